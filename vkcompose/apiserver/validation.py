"""Object validation with kube-apiserver's field errors.

A pure re-implementation of the parts of ``pkg/apis/core/validation/validation.go``,
``k8s.io/apimachinery/pkg/api/validation/objectmeta.go`` and
``pkg/apis/coordination/validation`` that clients observe: which field is wrong, the cause
reason (``FieldValueRequired``, ``FieldValueInvalid`` …) and the message body (``Required
value``, ``Invalid value: "x": <detail>`` …). Objects are JSON dicts after defaulting; garbage
of the wrong JSON type yields causes, never exceptions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any, Final

import attrs

from vkcompose.podspec.quantity import format_quantity, parse_quantity
from vkcompose.podspec.selectors import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
)

__all__ = [
    "Cause",
    "invalid_message",
    "validate",
    "validate_causes",
]


@attrs.frozen
class Cause:
    """One ``metav1.StatusCause`` of a 422 ``Invalid`` response.

    ``field`` is the JSON path (``spec.containers[0].image``), ``reason`` the cause type
    (``FieldValueRequired`` …) and ``message`` the error body without the field
    (``Required value``).
    """

    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The cause as the JSON object kube-apiserver puts in ``details.causes``."""
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


# --------------------------------------------------------------------------------------------
# field.Error constructors (k8s.io/apimachinery/pkg/util/validation/field/errors.go)
# --------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _with_detail(body: str, detail: str) -> str:
    return f"{body}: {detail}" if detail else body


def _required(path: str, detail: str = "") -> Cause:
    return Cause(path, "FieldValueRequired", _with_detail("Required value", detail))


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, "FieldValueInvalid", _with_detail(f"Invalid value: {_show(value)}", detail))


def _not_supported(path: str, value: Any, supported: Iterable[str]) -> Cause:
    allowed = ", ".join(json.dumps(s) for s in sorted(supported))
    return Cause(
        path,
        "FieldValueNotSupported",
        f"Unsupported value: {_show(value)}: supported values: {allowed}",
    )


def _duplicate(path: str, value: Any) -> Cause:
    return Cause(path, "FieldValueDuplicate", f"Duplicate value: {_show(value)}")


def _forbidden(path: str, detail: str) -> Cause:
    return Cause(path, "FieldValueForbidden", _with_detail("Forbidden", detail))


def _not_found(path: str, value: Any) -> Cause:
    return Cause(path, "FieldValueNotFound", f"Not found: {_show(value)}")


def _too_long(path: str, limit: int) -> Cause:
    return Cause(path, "FieldValueTooLong", f"Too long: must have at most {limit} bytes")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _d(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def _idx(path: str, i: int) -> str:
    return f"{path}[{i}]"


def _typed(out: list[Cause], path: str, value: Any, kind: type | tuple[type, ...],
           what: str) -> bool:  # fmt: skip
    """Record an Invalid cause if ``value`` (when present) is not of JSON type ``kind``."""
    if value is None:
        return False
    if (
        isinstance(value, bool)
        and kind is not bool
        and (not isinstance(kind, tuple) or bool not in kind)
    ):
        out.append(_invalid(path, value, f"must be {what}"))
        return False
    if not isinstance(value, kind):
        out.append(_invalid(path, value, f"must be {what}"))
        return False
    return True


_DNS1035_FMT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_RE: Final = re.compile(_DNS1035_FMT)


def _is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1035_RE.fullmatch(value):
        errs.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character "
            f"(e.g. 'my-name',  or 'abc-123', regex used for validation is '{_DNS1035_FMT}')"
        )
    return errs


NameValidator = Callable[[str], list[str]]

_NAME_RULES: Final[dict[str, NameValidator]] = {
    "Namespace": is_dns1123_label,
    "Service": _is_dns1035_label,
}

_CLUSTER_SCOPED: Final = frozenset({"Node", "Namespace"})


def _path_segment_errors(name: str) -> list[str]:
    # path.IsValidPathSegmentName: names are URL path segments.
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# --------------------------------------------------------------------------------------------
# metadata (objectmeta.go)
# --------------------------------------------------------------------------------------------

_TOTAL_ANNOTATION_SIZE: Final = 256 * 1024


def _validate_labels(out: list[Cause], labels: Any, path: str) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        out.append(_invalid(path, labels, "must be an object of string keys and values"))
        return
    for k, v in labels.items():
        for msg in is_qualified_name(str(k)):
            out.append(_invalid(path, k, msg))
        if not isinstance(v, str):
            out.append(_invalid(path, v, "label values must be strings"))
            continue
        for msg in is_valid_label_value(v):
            out.append(_invalid(path, v, msg))


def _validate_annotations(out: list[Cause], annotations: Any, path: str) -> None:
    if annotations is None:
        return
    if not isinstance(annotations, dict):
        out.append(_invalid(path, annotations, "must be an object of string keys and values"))
        return
    size = 0
    for k, v in annotations.items():
        for msg in is_qualified_name(str(k).lower()):
            out.append(_invalid(path, k, msg))
        if not isinstance(v, str):
            out.append(_invalid(_key(path, str(k)), v, "annotation values must be strings"))
            continue
        size += len(str(k).encode()) + len(v.encode())
    if size > _TOTAL_ANNOTATION_SIZE:
        out.append(_too_long(path, _TOTAL_ANNOTATION_SIZE))


def _validate_name(out: list[Cause], kind: str, meta: Mapping[str, Any]) -> None:
    rule = _NAME_RULES.get(kind, is_dns1123_subdomain)
    name = meta.get("name")
    generate = meta.get("generateName")
    if generate:
        if not isinstance(generate, str):
            out.append(_invalid("metadata.generateName", generate, "must be a string"))
        else:
            # maskTrailingDash: a prefix may end with '-'.
            masked = generate[:-1] + "a" if len(generate) > 1 and generate[-1] == "-" else generate
            for msg in rule(masked):
                out.append(_invalid("metadata.generateName", generate, msg))
    if not name:
        if not generate:
            out.append(_required("metadata.name", "name or generateName is required"))
        return
    if not isinstance(name, str):
        out.append(_invalid("metadata.name", name, "must be a string"))
        return
    for msg in rule(name) + _path_segment_errors(name):
        out.append(_invalid("metadata.name", name, msg))


def _validate_meta(out: list[Cause], kind: str, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = obj.get("metadata")
    if raw is not None and not isinstance(raw, dict):
        out.append(_invalid("metadata", raw, "must be an object"))
        return {}
    meta = _d(raw)
    _validate_name(out, kind, meta)
    ns = meta.get("namespace")
    if kind in _CLUSTER_SCOPED:
        if ns:
            out.append(_forbidden("metadata.namespace", "not allowed on this type"))
    elif ns:
        if not isinstance(ns, str):
            out.append(_invalid("metadata.namespace", ns, "must be a string"))
        else:
            for msg in is_dns1123_label(ns):
                out.append(_invalid("metadata.namespace", ns, msg))
    _validate_labels(out, meta.get("labels"), "metadata.labels")
    _validate_annotations(out, meta.get("annotations"), "metadata.annotations")
    fins: Any = meta.get("finalizers")
    if _typed(out, "metadata.finalizers", fins, list, "a list of strings"):
        seen: set[str] = set()
        for i, f in enumerate(fins):
            p = _idx("metadata.finalizers", i)
            if not isinstance(f, str):
                out.append(_invalid(p, f, "must be a string"))
                continue
            for msg in is_qualified_name(f):
                out.append(_invalid(p, f, msg))
            if f in seen:
                out.append(_duplicate(p, f))
            seen.add(f)
    for i, ref in enumerate(_l(meta.get("ownerReferences"))):
        p = _idx("metadata.ownerReferences", i)
        r = _d(ref)
        for fld in ("apiVersion", "kind", "name", "uid"):
            if not r.get(fld):
                out.append(_required(f"{p}.{fld}", f"{fld} must not be empty"))
    return meta


def _validate_meta_update(out: list[Cause], new: Mapping[str, Any], old: Mapping[str, Any]) -> None:
    nm, om = _d(new.get("metadata")), _d(old.get("metadata"))
    for fld in ("name", "namespace", "uid", "creationTimestamp"):
        if om.get(fld) and nm.get(fld) != om.get(fld):
            out.append(_invalid(f"metadata.{fld}", nm.get(fld), "field is immutable"))
    if om.get("generateName") and nm.get("generateName") not in (None, om.get("generateName")):
        out.append(_invalid("metadata.generateName", nm.get("generateName"), "field is immutable"))


# --------------------------------------------------------------------------------------------
# Pods
# --------------------------------------------------------------------------------------------

_ENV_NAME_FMT: Final = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_NAME_RE: Final = re.compile(_ENV_NAME_FMT)
_CONFIG_KEY_FMT: Final = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE: Final = re.compile(_CONFIG_KEY_FMT)
_PORT_NAME_RE: Final = re.compile("[-a-z0-9]+")
_PROTOCOLS: Final = ("SCTP", "TCP", "UDP")
_RESTART_POLICIES: Final = ("Always", "Never", "OnFailure")
_PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")
_DNS_POLICIES: Final = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
_TAINT_EFFECTS: Final = ("NoExecute", "NoSchedule", "PreferNoSchedule")
_FIELD_REF_PATHS: Final = (
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_ENV_SOURCES: Final = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
_MAX_INT32: Final = 2**31 - 1


def _ch_dir_errors(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def _env_name_errors(value: str) -> list[str]:
    errs: list[str] = []
    if not _ENV_NAME_RE.fullmatch(value):
        errs.append(
            "a valid environment variable name must consist of alphabetic characters, digits, "
            "'_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or "
            f"'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '{_ENV_NAME_FMT}')"
        )
    return errs + _ch_dir_errors(value)


def _config_key_errors(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _CONFIG_KEY_RE.fullmatch(value):
        errs.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            f"'{_CONFIG_KEY_FMT}')"
        )
    return errs + _ch_dir_errors(value)


def _port_name_errors(value: str) -> list[str]:
    # validation.IsValidPortName (IANA service names)
    errs: list[str] = []
    if len(value) > 15:
        errs.append("must be no more than 15 characters")
    if not _PORT_NAME_RE.fullmatch(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _port_number_ok(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _validate_ports(out: list[Cause], ports: Any, path: str) -> None:
    if not _typed(out, path, ports, list, "a list"):
        return
    names: set[str] = set()
    for i, raw in enumerate(ports):
        p = _idx(path, i)
        port = _d(raw)
        name = port.get("name")
        if name:
            if not isinstance(name, str):
                out.append(_invalid(f"{p}.name", name, "must be a string"))
            else:
                for msg in _port_name_errors(name):
                    out.append(_invalid(f"{p}.name", name, msg))
                if name in names:
                    out.append(_duplicate(f"{p}.name", name))
                names.add(name)
        cp = port.get("containerPort")
        if not cp:
            out.append(_required(f"{p}.containerPort"))
        elif not _port_number_ok(cp):
            out.append(_invalid(f"{p}.containerPort", cp, "must be between 1 and 65535, inclusive"))
        hp = port.get("hostPort")
        if hp and not _port_number_ok(hp):
            out.append(_invalid(f"{p}.hostPort", hp, "must be between 1 and 65535, inclusive"))
        proto = port.get("protocol")
        if proto is not None and proto not in _PROTOCOLS:
            out.append(_not_supported(f"{p}.protocol", proto, _PROTOCOLS))


def _validate_env(out: list[Cause], env: Any, path: str) -> None:
    if not _typed(out, path, env, list, "a list"):
        return
    for i, raw in enumerate(env):
        p = _idx(path, i)
        var = _d(raw)
        name = var.get("name")
        if not name:
            out.append(_required(f"{p}.name"))
        elif not isinstance(name, str):
            out.append(_invalid(f"{p}.name", name, "must be a string"))
        else:
            for msg in _env_name_errors(name):
                out.append(_invalid(f"{p}.name", name, msg))
        if "value" in var and var["value"] is not None and not isinstance(var["value"], str):
            out.append(_invalid(f"{p}.value", var["value"], "must be a string"))
        source = var.get("valueFrom")
        if source is None:
            continue
        src = _d(source)
        sp = f"{p}.valueFrom"
        present = [k for k in _ENV_SOURCES if src.get(k) is not None]
        if var.get("value"):
            out.append(_invalid(sp, "", "may not be specified when `value` is not empty"))
        if not present:
            out.append(
                _invalid(
                    sp,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` "
                    "or `secretKeyRef`",
                )
            )
        elif len(present) > 1:
            out.append(_invalid(sp, "", "may not have more than one field specified at a time"))
        ref = _d(src.get("fieldRef"))
        if "fieldRef" in present:
            fp = ref.get("fieldPath")
            if not fp:
                out.append(_required(f"{sp}.fieldRef.fieldPath"))
            elif not isinstance(fp, str) or not (
                fp in _FIELD_REF_PATHS[2:]
                or re.fullmatch(r"metadata\.(labels|annotations)\['[^']+'\]", fp)
            ):
                out.append(_not_supported(f"{sp}.fieldRef.fieldPath", fp, _FIELD_REF_PATHS[2:]))
        for key_ref in ("configMapKeyRef", "secretKeyRef"):
            if key_ref in present:
                kr = _d(src.get(key_ref))
                if not kr.get("key"):
                    out.append(_required(f"{sp}.{key_ref}.key"))
                elif isinstance(kr["key"], str):
                    for msg in _config_key_errors(kr["key"]):
                        out.append(_invalid(f"{sp}.{key_ref}.key", kr["key"], msg))
        if "resourceFieldRef" in present:
            rr = _d(src.get("resourceFieldRef"))
            if not rr.get("resource"):
                out.append(_required(f"{sp}.resourceFieldRef.resource"))


def _quantity(out: list[Cause], path: str, value: Any) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        out.append(_invalid(path, value, "must be a quantity"))
        return None
    try:
        q = parse_quantity(str(value))
    except ValueError as exc:
        out.append(_invalid(path, value, str(exc)))
        return None
    if q < 0:
        out.append(_invalid(path, value, "must be greater than or equal to 0"))
    return q


def _validate_resources(out: list[Cause], res: Any, path: str) -> None:
    if not _typed(out, path, res, dict, "an object"):
        return
    parsed: dict[str, dict[str, Fraction]] = {"limits": {}, "requests": {}}
    for part in ("limits", "requests"):
        values: Any = res.get(part)
        if not _typed(out, f"{path}.{part}", values, dict, "an object"):
            continue
        for name, value in values.items():
            p = _key(f"{path}.{part}", str(name))
            for msg in is_qualified_name(str(name)):
                out.append(_invalid(p, name, msg))
            q = _quantity(out, p, value)
            if q is not None:
                parsed[part][str(name)] = q
    for name, req in parsed["requests"].items():
        lim = parsed["limits"].get(name)
        if lim is not None and req > lim:
            out.append(
                _invalid(
                    _key(f"{path}.requests", name),
                    res["requests"][name],
                    f"must be less than or equal to {name} limit of {format_quantity(lim)}",
                )
            )


def _validate_container(out: list[Cause], raw: Any, path: str, volumes: set[str] | None,
                        names: set[str]) -> None:  # fmt: skip
    if not isinstance(raw, dict):
        out.append(_invalid(path, raw, "must be an object"))
        return
    name = raw.get("name")
    if not name:
        out.append(_required(f"{path}.name"))
    elif not isinstance(name, str):
        out.append(_invalid(f"{path}.name", name, "must be a string"))
    else:
        for msg in is_dns1123_label(name):
            out.append(_invalid(f"{path}.name", name, msg))
        if name in names:
            out.append(_duplicate(f"{path}.name", name))
        names.add(name)
    image = raw.get("image")
    if not image:
        out.append(_required(f"{path}.image"))
    elif not isinstance(image, str):
        out.append(_invalid(f"{path}.image", image, "must be a string"))
    elif image != image.strip():
        out.append(_invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    policy = raw.get("imagePullPolicy")
    if policy is not None and policy not in _PULL_POLICIES:
        out.append(_not_supported(f"{path}.imagePullPolicy", policy, _PULL_POLICIES))
    for list_field in ("command", "args"):
        v: Any = raw.get(list_field)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            out.append(_invalid(f"{path}.{list_field}", v, "must be a list of strings"))
    _validate_ports(out, raw.get("ports"), f"{path}.ports")
    _validate_env(out, raw.get("env"), f"{path}.env")
    _validate_resources(out, raw.get("resources"), f"{path}.resources")
    mounts: Any = raw.get("volumeMounts")
    if _typed(out, f"{path}.volumeMounts", mounts, list, "a list"):
        paths: set[str] = set()
        for i, m in enumerate(mounts):
            p = _idx(f"{path}.volumeMounts", i)
            mount = _d(m)
            mname = mount.get("name")
            if not mname:
                out.append(_required(f"{p}.name"))
            elif volumes is not None and mname not in volumes:
                out.append(_not_found(f"{p}.name", mname))
            mpath = mount.get("mountPath")
            if not mpath:
                out.append(_required(f"{p}.mountPath"))
            elif isinstance(mpath, str):
                if mpath in paths:
                    out.append(_invalid(f"{p}.mountPath", mpath, "must be unique"))
                paths.add(mpath)


def _validate_volumes(out: list[Cause], volumes: Any, path: str) -> set[str]:
    names: set[str] = set()
    if not _typed(out, path, volumes, list, "a list"):
        return names
    for i, raw in enumerate(volumes):
        p = _idx(path, i)
        vol = _d(raw)
        name = vol.get("name")
        if not name:
            out.append(_required(f"{p}.name"))
        elif not isinstance(name, str):
            out.append(_invalid(f"{p}.name", name, "must be a string"))
        else:
            for msg in is_dns1123_label(name):
                out.append(_invalid(f"{p}.name", name, msg))
            if name in names:
                out.append(_duplicate(f"{p}.name", name))
            names.add(name)
        sources = [k for k in vol if k != "name" and vol[k] is not None]
        if not sources:
            out.append(_required(p, "must specify a volume type"))
        elif len(sources) > 1:
            out.append(_forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
    return names


def _validate_tolerations(out: list[Cause], tolerations: Any, path: str) -> None:
    if not _typed(out, path, tolerations, list, "a list"):
        return
    for i, raw in enumerate(tolerations):
        p = _idx(path, i)
        t = _d(raw)
        key = t.get("key") or ""
        op = t.get("operator") or "Equal"
        if key:
            for msg in is_qualified_name(str(key)):
                out.append(_invalid(f"{p}.key", key, msg))
        elif op != "Exists":
            out.append(
                _invalid(
                    f"{p}.operator",
                    op,
                    'operator must be Exists when `key` is empty, which means "match all '
                    'values and all keys"',
                )
            )
        if op == "Exists":
            if t.get("value"):
                out.append(
                    _invalid(
                        f"{p}.operator",
                        t.get("value"),
                        "value must be empty when `operator` is 'Exists'",
                    )
                )
        elif op == "Equal":
            value = t.get("value") or ""
            for msg in is_valid_label_value(str(value)):
                out.append(_invalid(f"{p}.value", value, msg))
        else:
            out.append(_not_supported(f"{p}.operator", op, ("Equal", "Exists")))
        effect = t.get("effect")
        if effect and effect not in _TAINT_EFFECTS:
            out.append(_not_supported(f"{p}.effect", effect, _TAINT_EFFECTS))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(
                _invalid(
                    f"{p}.effect",
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )


def _validate_pod_spec(out: list[Cause], spec: Mapping[str, Any], path: str) -> None:
    volumes = _validate_volumes(out, spec.get("volumes"), f"{path}.volumes")
    names: set[str] = set()
    init: Any = spec.get("initContainers")
    if _typed(out, f"{path}.initContainers", init, list, "a list"):
        for i, c in enumerate(init):
            _validate_container(out, c, _idx(f"{path}.initContainers", i), volumes, names)
    containers: Any = spec.get("containers")
    if not containers:
        out.append(_required(f"{path}.containers"))
    elif _typed(out, f"{path}.containers", containers, list, "a list"):
        for i, c in enumerate(containers):
            _validate_container(out, c, _idx(f"{path}.containers", i), volumes, names)
    restart = spec.get("restartPolicy")
    if restart is not None and restart not in _RESTART_POLICIES:
        out.append(_not_supported(f"{path}.restartPolicy", restart, _RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if dns is not None and dns not in _DNS_POLICIES:
        out.append(_not_supported(f"{path}.dnsPolicy", dns, _DNS_POLICIES))
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (
        not isinstance(ads, int) or isinstance(ads, bool) or not 1 <= ads <= _MAX_INT32
    ):
        out.append(
            _invalid(
                f"{path}.activeDeadlineSeconds",
                ads,
                f"must be between 1 and {_MAX_INT32}, inclusive",
            )
        )
    tgp = spec.get("terminationGracePeriodSeconds")
    if tgp is not None and (not isinstance(tgp, int) or isinstance(tgp, bool)):
        out.append(_invalid(f"{path}.terminationGracePeriodSeconds", tgp, "must be an integer"))
    node_name = spec.get("nodeName")
    if node_name:
        if not isinstance(node_name, str):
            out.append(_invalid(f"{path}.nodeName", node_name, "must be a string"))
        else:
            for msg in is_dns1123_subdomain(node_name):
                out.append(_invalid(f"{path}.nodeName", node_name, msg))
    sa = spec.get("serviceAccountName")
    if sa:
        for msg in is_dns1123_subdomain(str(sa)):
            out.append(_invalid(f"{path}.serviceAccountName", sa, msg))
    _validate_labels(out, spec.get("nodeSelector"), f"{path}.nodeSelector")
    _validate_tolerations(out, spec.get("tolerations"), f"{path}.tolerations")
    for flag in ("hostNetwork", "hostPID", "hostIPC", "automountServiceAccountToken"):
        _typed(out, f"{path}.{flag}", spec.get(flag), bool, "a boolean")


_POD_UPDATE_MESSAGE: Final = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _without_seconds(t: Any) -> Any:
    return {k: v for k, v in t.items() if k != "tolerationSeconds"} if isinstance(t, dict) else t


def _validate_pod_update(out: list[Cause], new: Mapping[str, Any], old: Mapping[str, Any]) -> None:
    ns, os_ = dict(_d(new.get("spec"))), _d(old.get("spec"))
    # Fields that may change are copied from the old spec; anything else left is a change.
    for list_field in ("containers", "initContainers"):
        nl, ol = _l(ns.get(list_field)), _l(os_.get(list_field))
        if list_field in ns and len(nl) == len(ol):
            munged = []
            for nc, oc in zip(nl, ol, strict=True):
                if isinstance(nc, dict) and isinstance(oc, dict):
                    c = dict(nc)
                    if "image" in oc:
                        c["image"] = oc["image"]
                    else:
                        c.pop("image", None)
                    munged.append(c)
                else:
                    munged.append(nc)
            ns[list_field] = munged
    new_ads, old_ads = ns.get("activeDeadlineSeconds"), os_.get("activeDeadlineSeconds")
    if new_ads is not None:
        if isinstance(old_ads, int) and isinstance(new_ads, int) and new_ads > old_ads:
            out.append(
                _invalid(
                    "spec.activeDeadlineSeconds",
                    new_ads,
                    "must be less than or equal to previous value",
                )
            )
            return
    elif old_ads is not None:
        out.append(
            _invalid(
                "spec.activeDeadlineSeconds",
                None,
                "must not update from a positive integer to nil value",
            )
        )
        return
    if "activeDeadlineSeconds" in os_:
        ns["activeDeadlineSeconds"] = old_ads
    else:
        ns.pop("activeDeadlineSeconds", None)
    new_tgp, old_tgp = (
        ns.get("terminationGracePeriodSeconds"),
        os_.get("terminationGracePeriodSeconds"),
    )
    if isinstance(old_tgp, int) and old_tgp < 0 and new_tgp == 1:
        ns["terminationGracePeriodSeconds"] = old_tgp
    new_tol = _l(ns.get("tolerations"))
    old_tol = _l(os_.get("tolerations"))
    remaining = [_without_seconds(t) for t in new_tol]
    for i, t in enumerate(old_tol):
        stripped = _without_seconds(t)
        if stripped in remaining:
            remaining.remove(stripped)
        else:
            out.append(
                _forbidden(
                    _idx("spec.tolerations", i),
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            )
    new_gates = _l(ns.get("schedulingGates"))
    old_gates = _l(os_.get("schedulingGates"))
    if not all(g in old_gates for g in new_gates):
        out.append(_forbidden("spec.schedulingGates", "only deletion is allowed"))
    # tolerations and scheduling gates are checked above; drop them from the comparison
    for checked in ("tolerations", "schedulingGates"):
        if checked in os_:
            ns[checked] = os_[checked]
        else:
            ns.pop(checked, None)
    if ns != os_:
        changed = sorted(k for k in set(ns) | set(os_) if ns.get(k) != os_.get(k))
        detail = _POD_UPDATE_MESSAGE + "\n  changed: " + ", ".join(f"spec.{k}" for k in changed)
        out.append(_forbidden("spec", detail))


def _validate_pod(out: list[Cause], obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> None:
    spec: Any = obj.get("spec")
    if not isinstance(spec, dict):
        out.append(
            _required("spec") if spec is None else _invalid("spec", spec, "must be an object")
        )
        return
    _validate_pod_spec(out, spec, "spec")
    if old is not None:
        _validate_pod_update(out, obj, old)


# --------------------------------------------------------------------------------------------
# ConfigMaps and Secrets
# --------------------------------------------------------------------------------------------

_MAX_DATA_SIZE: Final = 1024 * 1024


def _validate_data_keys(out: list[Cause], obj: Mapping[str, Any], fields: tuple[str, ...]) -> int:
    size = 0
    seen: set[str] = set()
    for fld in fields:
        data: Any = obj.get(fld)
        if not _typed(out, fld, data, dict, "an object of strings"):
            continue
        for k, v in data.items():
            p = _key(fld, str(k))
            for msg in _config_key_errors(str(k)):
                out.append(_invalid(p, k, msg))
            if k in seen:
                out.append(_invalid(p, k, "duplicate of key present in data"))
            seen.add(str(k))
            if not isinstance(v, str):
                out.append(_invalid(p, "<value omitted>", "must be a string"))
                continue
            size += len(v)
    return size


def _validate_immutable(out: list[Cause], obj: Mapping[str, Any], old: Mapping[str, Any] | None,
                        fields: tuple[str, ...]) -> None:  # fmt: skip
    _typed(out, "immutable", obj.get("immutable"), bool, "a boolean")
    if old is None or old.get("immutable") is not True:
        return
    if obj.get("immutable") is not True:
        out.append(_forbidden("immutable", "field is immutable when `immutable` is set"))
    for fld in fields:
        if (obj.get(fld) or {}) != (old.get(fld) or {}):
            out.append(_forbidden(fld, "field is immutable when `immutable` is set"))


def _validate_configmap(out: list[Cause], obj: Mapping[str, Any],
                        old: Mapping[str, Any] | None) -> None:  # fmt: skip
    size = _validate_data_keys(out, obj, ("data", "binaryData"))
    if size > _MAX_DATA_SIZE:
        out.append(_too_long("", _MAX_DATA_SIZE))
    _validate_immutable(out, obj, old, ("data", "binaryData"))


_SECRET_REQUIRED_KEYS: Final = {
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _validate_secret(out: list[Cause], obj: Mapping[str, Any],
                     old: Mapping[str, Any] | None) -> None:  # fmt: skip
    size = _validate_data_keys(out, obj, ("data", "stringData"))
    if size > _MAX_DATA_SIZE:
        out.append(_too_long("data", _MAX_DATA_SIZE))
    stype = obj.get("type") or "Opaque"
    keys = set(_d(obj.get("data"))) | set(_d(obj.get("stringData")))
    for k in _SECRET_REQUIRED_KEYS.get(str(stype), ()):
        if k not in keys:
            out.append(_required(_key("data", k)))
    if stype == "kubernetes.io/service-account-token":
        ann = _d(_d(obj.get("metadata")).get("annotations"))
        if not ann.get("kubernetes.io/service-account.name"):
            out.append(_required("metadata.annotations[kubernetes.io/service-account.name]"))
    if old is not None and (old.get("type") or "Opaque") != stype:
        out.append(_invalid("type", stype, "field is immutable"))
    _validate_immutable(out, obj, old, ("data",))


# --------------------------------------------------------------------------------------------
# Nodes, Namespaces, Services, Leases
# --------------------------------------------------------------------------------------------


def _validate_node(out: list[Cause], obj: Mapping[str, Any]) -> None:
    spec: Any = obj.get("spec")
    if not _typed(out, "spec", spec, dict, "an object"):
        return
    _typed(out, "spec.unschedulable", spec.get("unschedulable"), bool, "a boolean")
    taints: Any = spec.get("taints")
    if not _typed(out, "spec.taints", taints, list, "a list"):
        return
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(taints):
        p = _idx("spec.taints", i)
        t = _d(raw)
        key = t.get("key")
        if not key:
            out.append(_required(f"{p}.key"))
        else:
            for msg in is_qualified_name(str(key)):
                out.append(_invalid(f"{p}.key", key, msg))
        value = t.get("value")
        if value:
            for msg in is_valid_label_value(str(value)):
                out.append(_invalid(f"{p}.value", value, msg))
        effect = t.get("effect")
        if not effect:
            out.append(_required(f"{p}.effect"))
        elif effect not in _TAINT_EFFECTS:
            out.append(_not_supported(f"{p}.effect", effect, _TAINT_EFFECTS))
        pair = (str(key), str(effect))
        if key and effect and pair in seen:
            out.append(_duplicate(p, f"{key}:{effect}"))
        seen.add(pair)


_SERVICE_TYPES: Final = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _validate_service(out: list[Cause], obj: Mapping[str, Any]) -> None:
    spec: Any = obj.get("spec")
    if not _typed(out, "spec", spec, dict, "an object"):
        return
    stype = spec.get("type") or "ClusterIP"
    if stype not in _SERVICE_TYPES:
        out.append(_not_supported("spec.type", stype, _SERVICE_TYPES))
    if stype == "ExternalName":
        if not spec.get("externalName"):
            out.append(_required("spec.externalName"))
        return
    ports: Any = spec.get("ports")
    if not _typed(out, "spec.ports", ports, list, "a list"):
        return
    names: set[str] = set()
    for i, raw in enumerate(ports):
        p = _idx("spec.ports", i)
        port = _d(raw)
        name = port.get("name")
        if len(ports) > 1 and not name:
            out.append(_required(f"{p}.name"))
        elif name:
            for msg in is_dns1123_label(str(name)):
                out.append(_invalid(f"{p}.name", name, msg))
            if name in names:
                out.append(_duplicate(f"{p}.name", name))
            names.add(str(name))
        number = port.get("port")
        if not _port_number_ok(number):
            out.append(_invalid(f"{p}.port", number, "must be between 1 and 65535, inclusive"))
        proto = port.get("protocol")
        if proto is not None and proto not in _PROTOCOLS:
            out.append(_not_supported(f"{p}.protocol", proto, _PROTOCOLS))
        target = port.get("targetPort")
        if isinstance(target, int) and not isinstance(target, bool):
            if not _port_number_ok(target):
                out.append(
                    _invalid(f"{p}.targetPort", target, "must be between 1 and 65535, inclusive")
                )
        elif isinstance(target, str) and target:
            for msg in _port_name_errors(target):
                out.append(_invalid(f"{p}.targetPort", target, msg))


_MICRO_TIME_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})"
)


def _validate_lease(out: list[Cause], obj: Mapping[str, Any]) -> None:
    spec: Any = obj.get("spec")
    if not _typed(out, "spec", spec, dict, "an object"):
        return
    _typed(out, "spec.holderIdentity", spec.get("holderIdentity"), str, "a string")
    duration: Any = spec.get("leaseDurationSeconds")
    if _typed(out, "spec.leaseDurationSeconds", duration, int, "an integer") and duration <= 0:
        out.append(_invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions: Any = spec.get("leaseTransitions")
    if _typed(out, "spec.leaseTransitions", transitions, int, "an integer") and transitions < 0:
        out.append(
            _invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
        )
    for fld in ("acquireTime", "renewTime"):
        v: Any = spec.get(fld)
        if _typed(out, f"spec.{fld}", v, str, "a RFC 3339 date-time") and not (
            _MICRO_TIME_RE.fullmatch(v)
        ):
            out.append(_invalid(f"spec.{fld}", v, "must be a RFC 3339 date-time"))


def _validate_namespace(out: list[Cause], obj: Mapping[str, Any]) -> None:
    spec: Any = obj.get("spec")
    if not _typed(out, "spec", spec, dict, "an object"):
        return
    fins: Any = spec.get("finalizers")
    if _typed(out, "spec.finalizers", fins, list, "a list"):
        for i, f in enumerate(fins):
            if not isinstance(f, str) or is_qualified_name(f):
                out.append(
                    _invalid(
                        _idx("spec.finalizers", i),
                        f,
                        "name is neither a standard finalizer name nor is it fully qualified",
                    )
                )


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------


def validate(kind: str, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """Validate ``obj`` of ``kind`` (``old`` is the stored object on update, else ``None``).

    Returns the causes of a 422 ``Invalid`` response, empty if the object is valid. Object
    metadata is checked for every kind; Pod, ConfigMap, Secret, Node, Namespace, Service,
    ServiceAccount, Event and Lease bodies get their kind's rules. Call it after defaulting.
    """
    out: list[Cause] = []
    if not isinstance(obj, dict):
        return [_invalid("", obj, "must be an object")]
    _validate_meta(out, kind, obj)
    if old is not None and isinstance(old, dict):
        _validate_meta_update(out, obj, old)
    if kind == "Pod":
        if old is not None and isinstance(old, dict) and obj.get("spec") == old.get("spec"):
            # Status and metadata writes: the stored spec was validated when it was written.
            return out
        _validate_pod(out, obj, old)
    elif kind == "ConfigMap":
        _validate_configmap(out, obj, old)
    elif kind == "Secret":
        _validate_secret(out, obj, old)
    elif kind == "Node":
        _validate_node(out, obj)
    elif kind == "Namespace":
        _validate_namespace(out, obj)
    elif kind == "Service":
        _validate_service(out, obj)
    elif kind == "Lease":
        _validate_lease(out, obj)
    return out


def validate_causes(
    kind: str, obj: Mapping[str, Any], old: Mapping[str, Any] | None
) -> list[dict[str, str]]:
    """:func:`validate` with the causes as ``details.causes`` JSON objects."""
    return [c.as_dict() for c in validate(kind, obj, old)]


def invalid_message(kind: str, name: str, causes: list[Cause], group: str = "") -> str:
    """The ``Status.message`` kube-apiserver writes for these causes
    (``Pod "x" is invalid: spec.containers[0].image: Required value``)."""
    qualified = f"{kind}.{group}" if group else kind
    parts = list(dict.fromkeys(str(c) for c in causes))
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return f'{qualified} "{name}" is invalid: {summary}'

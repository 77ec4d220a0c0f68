"""kubectl's imperative commands (their bodies are protobuf) against the embedded API server,
with the pinned kubectl binary; ``get -o json`` shows what was stored."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from vkcompose.apiserver import APIServer

pytestmark = pytest.mark.anyio

KUBECTL = shutil.which("kubectl", path=os.path.dirname(sys.executable))


class Kubectl:
    """Runs the pinned kubectl with the server's admin kubeconfig."""

    def __init__(self, server: APIServer, home: Path) -> None:
        assert KUBECTL, "the pinned kubectl binary is not installed"
        self.server = server
        self.home = home
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(server.kubeconfig_path)}

    async def run(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL,
            "--cache-dir",
            str(self.home / "cache"),
            *args,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            data = stdin.encode() if stdin is not None else None
            out, err = await asyncio.wait_for(proc.communicate(data), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def __call__(self, *args: str, stdin: str | None = None) -> str:
        code, out, err = await self.run(*args, stdin=stdin)
        assert code == 0, f"kubectl {' '.join(args)}: {err}"
        return out

    async def json(self, *args: str) -> Any:
        return json.loads(await self(*args, "-o", "json"))


@pytest.fixture
def kubectl(apiserver: APIServer, tmp_path: Path) -> Kubectl:
    return Kubectl(apiserver, tmp_path)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_create_configmap_and_secret(kubectl: Kubectl, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00\xff binary")
    text = tmp_path / "greeting.txt"
    text.write_text("hello\n")
    out = await kubectl(
        "create", "configmap", "settings", "--from-literal=mode=fast",
        f"--from-file={text}", f"--from-file=blob={blob}",
    )  # fmt: skip
    assert out.strip() == "configmap/settings created"
    cm = await kubectl.json("get", "configmap", "settings")
    assert cm["data"] == {"mode": "fast", "greeting.txt": "hello\n"}
    assert base64.b64decode(cm["binaryData"]["blob"]) == b"\x00\xff binary"
    assert cm["metadata"]["uid"] and cm["metadata"]["creationTimestamp"]

    await kubectl("create", "secret", "generic", "db", "--from-literal=password=hunter2")
    secret = await kubectl.json("get", "secret", "db")
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["password"]) == b"hunter2"

    await kubectl(
        "create", "secret", "docker-registry", "pull", "--docker-server=registry.local",
        "--docker-username=u", "--docker-password=p",
    )  # fmt: skip
    pull = await kubectl.json("get", "secret", "pull")
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))["auths"]
    assert auths["registry.local"]["username"] == "u"

    # a second create of the same name is refused by the server, as for JSON bodies
    code, _out, err = await kubectl.run("create", "configmap", "settings", "--from-literal=a=b")
    assert code != 0 and 'configmaps "settings" already exists' in err

    # label/annotate are patches (JSON); they work on the objects created above
    await kubectl("label", "configmap", "settings", "tier=web")
    assert (await kubectl.json("get", "configmap", "settings"))["metadata"]["labels"] == {
        "tier": "web"
    }


async def test_create_namespace_and_objects_in_it(kubectl: Kubectl) -> None:
    assert (await kubectl("create", "namespace", "team")).strip() == "namespace/team created"
    ns = await kubectl.json("get", "namespace", "team")
    assert ns["status"]["phase"] == "Active"
    await kubectl("create", "configmap", "c", "-n", "team", "--from-literal=k=v")
    assert (await kubectl.json("get", "configmap", "c", "-n", "team"))["data"] == {"k": "v"}
    code, _out, err = await kubectl.run("create", "configmap", "c", "-n", "missing")
    assert code != 0 and 'namespaces "missing" not found' in err


async def test_service_account_token_and_whoami(kubectl: Kubectl, apiserver: APIServer) -> None:
    await kubectl("create", "serviceaccount", "robot")
    sa = await kubectl.json("get", "serviceaccount", "robot")
    assert sa["metadata"]["name"] == "robot"

    token = (await kubectl("create", "token", "robot", "--duration=20m")).strip()
    claims = _claims(token)
    assert claims["sub"] == "system:serviceaccount:default:robot"
    assert claims["exp"] - claims["iat"] == 1200

    aud = _claims((await kubectl("create", "token", "robot", "--audience=vault")).strip())
    assert aud["aud"] == ["vault"]

    code, _out, err = await kubectl.run("create", "token", "nobody")
    assert code != 0 and 'serviceaccounts "nobody" not found' in err

    admin = await kubectl.json("auth", "whoami")
    assert admin["kind"] == "SelfSubjectReview"
    assert "system:masters" in admin["status"]["userInfo"]["groups"]

    # the issued token authenticates: whoami with it (and nothing else) names the account
    assert apiserver.ca_path is not None
    as_robot = await kubectl.json(
        "--kubeconfig", os.devnull, "--server", apiserver.url,
        "--certificate-authority", str(apiserver.ca_path), "--token", token, "auth", "whoami",
    )  # fmt: skip
    user = as_robot["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:default:robot"
    assert "system:serviceaccounts" in user["groups"]


async def test_auth_can_i(kubectl: Kubectl) -> None:
    for question in (
        ["get", "pods"],
        ["create", "configmaps", "-n", "kube-system"],
        ["get", "pods", "--subresource=log"],
        ["get", "/healthz"],
    ):
        assert (await kubectl("auth", "can-i", *question)).strip() == "yes", question


async def test_create_service_and_quota(kubectl: Kubectl) -> None:
    await kubectl("create", "service", "clusterip", "web", "--tcp=80:8080", "--tcp=443:https")
    svc = await kubectl.json("get", "service", "web")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["clusterIP"].startswith("10.")
    assert svc["spec"]["selector"] == {"app": "web"}
    ports = {p["port"]: p for p in svc["spec"]["ports"]}
    assert ports[80]["targetPort"] == 8080 and ports[443]["targetPort"] == "https"
    assert ports[80]["protocol"] == "TCP" and ports[80]["name"] == "80-8080"

    await kubectl("create", "service", "externalname", "ext", "--external-name=example.com")
    ext = await kubectl.json("get", "service", "ext")
    assert ext["spec"]["type"] == "ExternalName"
    assert ext["spec"]["externalName"] == "example.com"

    await kubectl("create", "quota", "small", "--hard=pods=2,cpu=1500m,memory=1Gi")
    quota = await kubectl.json("get", "resourcequota", "small")
    assert quota["spec"]["hard"] == {"pods": "2", "cpu": "1500m", "memory": "1Gi"}


NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-1"},
    "status": {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    },
}
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}]},
}


async def test_drain_evicts_with_the_requested_grace(kubectl: Kubectl) -> None:
    await kubectl("create", "-f", "-", stdin=json.dumps(NODE))
    await kubectl("create", "-f", "-", stdin=json.dumps(POD))
    # the Eviction (policy/v1, protobuf) carries DeleteOptions; no kubelet confirms the
    # deletion here, so drain times out waiting while the pod stays terminating
    code, out, _err = await kubectl.run(
        "drain", "node-1", "--force", "--grace-period=7", "--timeout=2s"
    )
    assert code != 0 and "evicting pod default/web" in out, out
    pod = await kubectl.json("get", "pod", "web")
    assert pod["metadata"]["deletionTimestamp"]
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 7
    node = await kubectl.json("get", "node", "node-1")
    assert node["spec"]["unschedulable"] is True

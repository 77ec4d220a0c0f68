"""Testing helpers: an embedded cluster fixture and a backend conformance kit."""

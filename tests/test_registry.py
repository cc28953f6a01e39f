"""The converter table: lookup by the highest since-version not newer than the model's opset."""
from onnx2torch.registry import Lowered, converter, lookup, registered_ops, _TABLE


def test_lookup_takes_highest_since_not_above_opset(monkeypatch):
    monkeypatch.setitem(_TABLE, ("test.domain", "Thing"), [])

    @converter("Thing", since=5, domain="test.domain")
    def thing_v5(node, ctx):
        return Lowered(None)

    @converter("Thing", since=11, domain="test.domain")
    def thing_v11(node, ctx):
        return Lowered(None)

    assert lookup("test.domain", "Thing", 4) is None
    assert lookup("test.domain", "Thing", 5).fn is thing_v5
    assert lookup("test.domain", "Thing", 10).fn is thing_v5
    assert lookup("test.domain", "Thing", 11).fn is thing_v11
    assert lookup("test.domain", "Thing", 99).fn is thing_v11


def test_default_domain_aliases():
    import onnx2torch  # noqa: F401 - registers converters

    assert lookup("ai.onnx", "Relu", 14) is lookup("", "Relu", 14)
    assert ("", "Relu") in registered_ops()

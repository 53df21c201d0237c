"""Property-based: the CLI's size parser and the layer arithmetic raise nothing but CnnlabError."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.arithmetic import layer_arithmetic
from cnnlab.cli.common import parse_ints
from cnnlab.errors import CnnlabError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=st.text(alphabet="0123456789xX*-+ .e", max_size=12))
def test_sizes_parse_or_raise_its_error(text: str) -> None:
    try:
        values = parse_ints(text, "--input")
    except CnnlabError:
        return
    assert values and all(v >= 1 for v in values)


@SETTINGS
@given(op=st.sampled_from(["conv", "tconv", "pool"]), size=st.lists(st.integers(1, 300), min_size=1, max_size=3),
       kernel=st.integers(1, 40), stride=st.integers(1, 9), dilation=st.integers(1, 5),
       padding=st.one_of(st.integers(-3, 20), st.sampled_from(["same", "valid", "full", "sideways"])))
def test_layer_arithmetic_gives_sizes_or_its_error(op, size, kernel, stride, dilation, padding) -> None:
    try:
        result = layer_arithmetic(op, size, [kernel], [stride], padding, [dilation])
    except CnnlabError:
        return
    assert all(o >= 1 for o in result["output"])

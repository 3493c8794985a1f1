import pytest

from esteira import pipeline, step
from esteira.errors import PipelineDefinitionError
from esteira.pipelines.params import parse_assignments, resolve_params


@step
def raw(n: int = 3):
    return list(range(n))


@step
def doubled(raw):
    return [2 * x for x in raw]


@step(outputs=("low", "high"))
def halves(doubled, cut: int = 2):
    return [x for x in doubled if x < cut], [x for x in doubled if x >= cut]


@step(inputs={"values": "high"})
def report(values, low):
    return {"high": values, "low": low}


def test_order_follows_data_not_declaration():
    p = pipeline("p", [report, halves, doubled, raw])
    assert [s.name for s in p.steps] == ["raw", "doubled", "halves", "report"]
    assert p.params == {"n": 3, "cut": 2}
    assert [s.name for s in p.downstream(p.step("doubled"))] == ["halves", "report"]
    assert p.data_inputs(p.step("report")) == {"values": "high", "low": "low"}


def test_steps_stay_plain_functions():
    assert doubled([1, 2]) == [2, 4]
    assert halves([1, 5], cut=3) == ([1], [5])


def test_cycle_is_rejected_with_the_path():
    @step
    def a(b):
        return b

    @step
    def b(c):
        return c

    @step
    def c(a):
        return a

    with pytest.raises(PipelineDefinitionError, match=r"cycle: a → b → c → a"):
        pipeline("loop", [a, b, c])


def test_reading_own_output_is_rejected():
    @step
    def selfish(selfish):
        return selfish

    with pytest.raises(PipelineDefinitionError, match="reads its own output"):
        pipeline("p", [selfish])


def test_unknown_input_names_the_argument_and_step():
    @step
    def needs(nowhere):
        return nowhere

    with pytest.raises(PipelineDefinitionError, match=r"'nowhere' of step 'needs'"):
        pipeline("p", [needs])


def test_duplicate_output_and_step_names():
    @step(name="raw")
    def other():
        return 1

    with pytest.raises(PipelineDefinitionError, match="two steps named 'raw'"):
        pipeline("p", [raw, other])

    @step(outputs="raw")
    def clash():
        return 1

    with pytest.raises(PipelineDefinitionError, match="produced by both"):
        pipeline("p", [raw, clash])


def test_wiring_an_unknown_argument_is_rejected():
    with pytest.raises(PipelineDefinitionError, match="has no such argument"):

        @step(inputs={"missing": "raw"})
        def f(x):
            return x


def test_not_a_step_is_rejected():
    with pytest.raises(PipelineDefinitionError, match=r"decorate it with @esteira\.step"):
        pipeline("p", [raw, lambda: 1])


def test_params_layers_and_typed_cli_values():
    p = pipeline("p", [raw, doubled, halves, report], params={"cut": 4})
    assert resolve_params(p, {"n": 5}, {"n": 7}) == {"n": 7, "cut": 4}
    with pytest.raises(PipelineDefinitionError, match="no parameter 'm'"):
        resolve_params(p, {"m": 1})
    assert parse_assignments(p, ["n=10", "cut=1"]) == {"n": 10, "cut": 1}
    with pytest.raises(PipelineDefinitionError, match="n=ten"):
        parse_assignments(p, ["n=ten"])
    with pytest.raises(PipelineDefinitionError, match="NAME=VALUE"):
        parse_assignments(p, ["n"])


def test_unused_pipeline_param_is_rejected():
    with pytest.raises(PipelineDefinitionError, match="read by no step"):
        pipeline("p", [raw], params={"typo": 1})


def test_code_hash_changes_with_source_and_version():
    @step
    def f():
        return 1

    @step(version="2")
    def g():
        return 1

    assert f.code_hash != g.code_hash
    assert len(f.code_hash) == 16

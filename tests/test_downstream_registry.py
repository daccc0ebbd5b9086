"""How recipes name downstream tasks: the registry's names, errors that name the field, the run
spec a task gives, and the task list in `divrob models` and `divrob --help`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from divrob.cli import app
from divrob.downstream import kinds, parse_task, task_names, task_of_spec
from divrob.errors import RecipeError, SourceError
from divrob.recipes.load import load_recipe

RECIPE = """
[study]
name = "t"
downstream = {downstream}
archs = ["resnet18"]

[[distribution]]
name = "scratch"
"""


def _load(tmp_path, downstream: str):
    path = tmp_path / "r.toml"
    path.write_text(RECIPE.format(downstream=downstream))
    return load_recipe(path)


@pytest.mark.parametrize("downstream, message", [
    ('"wilds:fmw"', r"study.downstream: unknown downstream task 'wilds:fmw'; choose from iwildcam, "),
    ('{ id_domain = "real" }', r"study.downstream: task: a downstream table needs task = \"NAME\""),
    ('["iwildcam", { task = "domainnet", id_domain = "photo" }]',
     r"study.downstream: \[1\] id_domain: 'photo' is not a DomainNet domain"),
    ('["domainnet:real", { task = "domainnet", id_domain = "real" }]',
     r"study.downstream: \[1\] 'domainnet:real' is already \[0\]"),
    ('{ task = "folder", name = "mine", metric = "auc" }', r"study.downstream: metric: Input should be 'acc' or"),
    ('{ task = "iwildcam", id_domain = "real" }', r"id_domain: not an option of 'wilds:iwildcam' \(its options: none\)"),
    ("[]", r"study.downstream: an empty list"),
])
def test_recipe_errors_name_the_field(tmp_path, downstream, message):
    with pytest.raises(RecipeError, match=message):
        _load(tmp_path, downstream)


def test_recipe_tasks_and_image_sizes(tmp_path):
    study = _load(tmp_path, '["iwildcam", "wilds:camelyon17", { task = "folder", name = "mine" }]').study
    assert [t.label for t in study.tasks] == ["iwildcam", "wilds:camelyon17", "folder:mine"]
    assert study.downstream_label == "iwildcam, wilds:camelyon17, folder:mine"
    # each task's default input size is checked against the architectures: AlexNet needs 63 px,
    # Camelyon17's patches are 96 px, so it fits; a recipe's own size overrides every task's
    path = tmp_path / "a.toml"
    path.write_text(RECIPE.format(downstream='"wilds:camelyon17"').replace('"resnet18"', '"alexnet"')
                    .replace('archs', 'finetune = { image_size = 32 }\narchs'))
    with pytest.raises(RecipeError, match="finetune.image_size"):
        load_recipe(path)


def test_spec_round_trip_gives_the_same_task():
    for value in ("iwildcam", "wilds:rxrx1", "camtrap-sim", "domainnet:quickdraw",
                  {"task": "domainnet", "id_domain": "real", "ood_domains": ["sketch", "clipart"]},
                  {"task": "folder", "name": "x", "metric": "f1_macro"}):
        ref = parse_task(value)
        again = task_of_spec(ref.label, ref.spec_options)
        assert (again.kind, again.options) == (ref.kind, ref.options)
    with pytest.raises(SourceError, match="not one this divrob knows"):
        task_of_spec("noop", {})


def test_models_and_help_list_the_tasks():
    runner = CliRunner()
    out = runner.invoke(app, ["models"], env={"COLUMNS": "200"}).output
    for name in kinds():
        assert name in out
    assert "[study] downstream" in out and "id_domain, ood_domains" in out and "domainnet:<id_domain>" in out
    help_text = " ".join(runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output.split())
    assert "Downstream tasks a recipe may name: " + ", ".join(task_names()) in help_text

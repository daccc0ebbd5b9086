"""Recipe schema, sweeps and error messages."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from divrob.cli import app
from divrob.errors import RecipeError
from divrob.recipes.load import load_recipe

STUDY = """
[study]
name = "t"
downstream = "camtrap-sim"
archs = ["resnet18"]
"""


def write(tmp_path, body: str, name: str = "r.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(STUDY) + textwrap.dedent(body))
    return p


def test_sweep_expands_product_and_formats_names(tmp_path):
    p = write(tmp_path, """
        [[distribution]]
        name = "scratch"

        [[distribution]]
        name = "s-{total}-{seed}"
        source = "demo-shapes"
        total = [100, 200]
        seed = [0, 1]
    """)
    r = load_recipe(p)
    names = [d.distribution.name for d in r.distributions]
    assert names == ["scratch", "s-100-0", "s-100-1", "s-200-0", "s-200-1"]
    assert r.distributions[2].sweep == {"total": 100, "seed": 1}
    assert r.distributions[0].distribution.is_scratch


def test_nested_sweep_and_dotted_name(tmp_path):
    p = write(tmp_path, """
        [[distribution]]
        name = "b-{classes.subclass_fraction}"
        source = "imagenet"
        classes = { breeds = "paper-16x12", subclass_fraction = [0.33, 1.0] }
    """)
    r = load_recipe(p)
    assert [d.distribution.name for d in r.distributions] == ["b-0.33", "b-1.0"]
    classes = r.distributions[0].distribution.classes
    assert (classes.breeds, classes.subclass_fraction) == ("paper-16x12", 0.33)


@pytest.mark.parametrize(
    "body, field, reason",
    [
        ('[[distribution]]\nname = "a"\nsource = "demo-shapes"\ntotl = 5\n', "distribution[0].totl", "unknown key"),
        ('[[distribution]]\nname = "a-{total}"\nsource = "demo-shapes"\ntotal = [5, 0]\n', "distribution[0].total", "greater than 0"),
        ('[[distribution]]\nname = "a"\nsource = "demo-shapes"\ntotal = [5, 6]\n', "distribution[0]", "must mention the swept keys"),
        ('[[distribution]]\nname = "a"\n', "distribution[0]", "has no source"),
        ('[[distribution]]\nname = "a"\nsource = "demo-shapes"\n[[distribution]]\nname = "a"\nsource = "imagenet"\n', "distribution[1].name", "already the name"),
    ],
)
def test_bad_recipes_name_file_field_and_reason(tmp_path, body, field, reason):
    p = write(tmp_path, body)
    with pytest.raises(RecipeError) as exc:
        load_recipe(p)
    msg = str(exc.value)
    assert str(p) in msg and field in msg and reason in msg


def test_unknown_arch_and_bad_toml(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text('[study]\nname = "t"\narchs = ["resnet19"]\n[[distribution]]\nname = "scratch"\n')
    with pytest.raises(RecipeError, match=r"study\.archs: unknown architecture"):
        load_recipe(p)
    p.write_text("[study\n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(p)


def test_cli_validate_exit_codes_and_no_traceback(tmp_path):
    good = write(tmp_path, '[[distribution]]\nname = "scratch"\n', "good.toml")
    bad = write(tmp_path, '[[distribution]]\nname = "a"\nsource = "demo-shapes"\ntotal = -1\n', "bad.toml")
    runner = CliRunner()
    ok = runner.invoke(app, ["recipes", "validate", str(good)])
    assert ok.exit_code == 0, ok.output
    res = runner.invoke(app, ["recipes", "validate", str(bad)])
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    assert "bad.toml: distribution[0].total" in res.output


def test_bundled_recipes_validate():
    from divrob.bundled import bundled

    for p in sorted(bundled("recipes").rglob("*.toml")):
        load_recipe(p)


@pytest.mark.slow
def test_help_and_validate_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from divrob.cli import app\n"
        "r = CliRunner()\n"
        "assert r.invoke(app, ['--help']).exit_code == 0\n"
        "assert r.invoke(app, ['recipes', 'validate', 'recipes/demo/quickstart.toml']).exit_code == 0\n"
        "print('torch' in sys.modules)\n"
    )
    from divrob.bundled import bundled_root

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=bundled_root(), check=True)
    assert out.stdout.strip() == "False"


def test_generate_tables_are_checked(tmp_path):
    """[generate.diffusion] per_class is a number or "imagenet" (which needs classes = "imagenet");
    [generate.fractaldb] defaults are FractalDB-1k's."""
    body = '[[distribution]]\nname = "d"\nsource = "diffusion"\n[generate.diffusion]\nmodel = "m"\n'
    ok = load_recipe(write(tmp_path, body + 'per_class = "imagenet"\n'))
    assert ok.generate.diffusion.per_class == "imagenet"
    for extra, reason in (('per_class = "imagenet"\nclasses = "my.txt"\n', 'needs classes = "imagenet"'),
                          ('per_class = "all"\n', "per_class"), ("per_class = 0\n", "positive")):
        with pytest.raises(RecipeError, match=reason):
            load_recipe(write(tmp_path, body + extra))
    fdb = load_recipe(write(tmp_path, '[[distribution]]\nname = "f"\nsource = "fractaldb"\n[generate.fractaldb]\n'))
    assert fdb.generate.fractaldb.weight_step == 0.4 and fdb.generate.fractaldb.points == 200_000

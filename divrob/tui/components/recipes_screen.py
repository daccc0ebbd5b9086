"""Recipes: the workspace's and the bundled recipe files (the folders are watched: a new file
appears by itself), any file through `o` (open, with path completion); a recipe's study and
expanded distributions, or its validation error inline; a class-count preview; build."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, OptionList, Static
from textual.widgets.option_list import Option

from divrob.tui.components.base import DataScreen, Done
from divrob.tui.components.nav_bar import NavBar
from divrob.tui.components.progress_panel import ProgressPanel
from divrob.tui.components.tables import fill_table

COLUMNS = ("distribution", "source", "size", "classes", "labels", "sweep")


class RecipesScreen(DataScreen):
    MODE = "recipes"
    DEFAULT_CSS = """
    RecipesScreen #files { width: 30; height: 1fr; }
    RecipesScreen #detail { width: 1fr; }
    RecipesScreen #recipe-head { height: auto; padding: 0 1; }
    RecipesScreen #recipe-head.-error { color: $error; text-style: bold; }
    RecipesScreen #dists { height: auto; max-height: 9; }
    RecipesScreen #counts { height: auto; padding: 0 1; color: $text-muted; }
    RecipesScreen #hist { height: 1fr; min-height: 6; }
    """
    BINDINGS = [
        Binding("c", "counts", "Class counts"),
        Binding("b", "build", "Build"),
        Binding("s", "study", "Study this"),
        Binding("o", "app.open_recipe", "Open file…"),
        Binding("R", "reload", "Rescan", show=False),
    ]

    class FilesLoaded(Message):
        def __init__(self, files) -> None:
            self.files = files
            super().__init__()

    class RecipeLoaded(Message):
        def __init__(self, view) -> None:
            self.view = view
            super().__init__()

    class CountsLoaded(Message):
        def __init__(self, value) -> None:
            self.name, self.info = value
            super().__init__()

    def __init__(self) -> None:
        super().__init__()
        self.files: list = []
        self.view = None

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        with Horizontal():
            yield OptionList(id="files")
            with Vertical(id="detail"):
                yield Static("choose a recipe on the left", id="recipe-head", markup=False)
                yield DataTable(id="dists", cursor_type="row", zebra_stripes=True)
                yield Static("", id="counts", markup=False)
        yield ProgressPanel()
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()
        self.set_interval(self.app.refresh_s * 2, self._watch)

    def action_reload(self) -> None:
        self.in_worker(self.adapter.recipe_files, self.FilesLoaded, group="files", context="listing recipes")

    def _watch(self) -> None:
        """The recipe folders, polled while shown: a file added or removed updates the list."""
        if self.app.screen is self and self.poll_due("files"):
            self.action_reload()

    @on(FilesLoaded)
    def _files_loaded(self, m: FilesLoaded) -> None:
        if m.files == self.files and self.files:
            return  # unchanged: keep the cursor and the shown recipe
        keep = self.current_file if self.files else None
        self.files = m.files
        options: list = []
        group = None
        for i, f in enumerate(m.files):
            if f.group != group:
                group = f.group
                options.append(Option(f"── {group} ──", id=f"head-{group}", disabled=True))
            options.append(Option(f.label, id=f"file-{i}"))
        if not m.files:
            options.append(Option("(no recipes: add .toml files to the workspace)", disabled=True))
        ol = self.query_one("#files", OptionList)
        ol.set_options(options)
        if keep is None:
            ol.focus()
        ids = {f"file-{i}": f.path for i, f in enumerate(m.files)}
        again = next((k for k, o in enumerate(options) if keep is not None and ids.get(o.id or "") == keep), None)
        first = next((k for k, o in enumerate(options) if not o.disabled), None)
        if again is not None or first is not None:
            ol.highlighted = again if again is not None else first

    @property
    def current_file(self) -> Path | None:
        ol = self.query_one("#files", OptionList)
        if ol.highlighted is None:
            return None
        oid = ol.get_option_at_index(ol.highlighted).id or ""
        return self.files[int(oid[5:])].path if oid.startswith("file-") else None

    @on(OptionList.OptionHighlighted, "#files")
    def _highlighted(self, m: OptionList.OptionHighlighted) -> None:
        path = self.current_file
        if path is not None:
            self.in_worker(lambda: self.adapter.open_recipe(path), self.RecipeLoaded, group="recipe",
                           context=f"reading {path.name}")

    @on(OptionList.OptionSelected, "#files")
    def _selected(self, m: OptionList.OptionSelected) -> None:
        self.query_one("#dists", DataTable).focus()

    @on(RecipeLoaded)
    def _recipe_loaded(self, m: RecipeLoaded) -> None:
        v = self.view = m.view
        head = self.query_one("#recipe-head", Static)
        table = self.query_one("#dists", DataTable)
        table.clear(columns=True)
        self.query_one("#counts", Static).update("")
        for plot in self.query("#hist"):
            plot.display = False
        table.display = v.ok
        if not v.ok:
            where = f" · field {v.error_field}" if v.error_field else ""
            head.update(f"✗ {v.file.name}{where}\n  {v.error_reason}")
            head.add_class("-error")
            return
        head.remove_class("-error")
        head.update(f"study {v.study}\n{v.summary}")
        fill_table(table, COLUMNS, [tuple(row[c] for c in COLUMNS) for row in v.rows],
                   row_keys=[row["distribution"] for row in v.rows])

    def _current_distribution(self) -> str | None:
        table = self.query_one("#dists", DataTable)
        if self.view is None or not self.view.ok or table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_counts(self) -> None:
        name = self._current_distribution()
        if name is None:
            self.notify("choose a valid recipe and a distribution first", severity="warning")
            return
        path, reporter = self.view.file, self.reporter()
        self.query_one("#counts", Static).update(f"building {name}…")
        self.in_worker(lambda: (name, self.adapter.class_counts(path, name, reporter)), self.CountsLoaded,
                       group="counts", context=f"class counts of {name}")

    def failed(self, group: str, error: BaseException) -> None:
        if group in ("counts", "build"):  # "building …" must not outlive the error
            self.query_one("#counts", Static).update("")

    @on(CountsLoaded)
    def _counts_loaded(self, m: CountsLoaded) -> None:
        info = m.info
        self.query_one("#counts", Static).update(
            f"{m.name}: manifest {info.manifest_id} · {info.n_images} images · {info.n_classes} classes "
            f"· {info.min_per_class}–{info.max_per_class} per class")
        from textual_plotext import (
            PlotextPlot,  # on first use: it is not needed to start
        )

        plots = self.query("#hist")
        if plots:
            plot = plots.first()
        else:
            plot = PlotextPlot(id="hist")
            self.query_one("#detail").mount(plot)
        plot.display = True
        plt = plot.plt
        plt.clear_figure()
        counts = list(info.class_counts)
        plt.hist(counts, bins=min(20, max(5, info.n_classes)))
        plt.title("images per class")
        plot.refresh()

    def action_build(self) -> None:
        if self.view is None or not self.view.ok:
            self.notify("choose a valid recipe first", severity="warning")
            return
        path, reporter = self.view.file, self.reporter()
        self.in_worker(lambda: self.adapter.build_recipe(path, reporter), lambda v: Done("built", v),
                       group="build", context=f"building {path.name}")

    @on(Done)
    def _done(self, m: Done) -> None:
        if m.what == "built":
            n = sum(1 for _, info in m.value if info is not None)
            self.notify(f"{n} manifest(s) built", title="build")

    def action_study(self) -> None:
        if self.view is None or not self.view.ok:
            self.notify("choose a valid recipe first", severity="warning")
            return
        self.app.recipe = self.view.file
        self.app.switch_mode("study")

"""FractalDB-1k as Kataoka et al. published it: every number divrob's FractalDB generator uses by
default, with the line of their code it comes from (hirokatsukataoka16/FractalDB-Pretrained-
ResNet-PyTorch, the `exe.sh` / `exe_parallel.sh` scripts that made the published dataset, and the
`param_search/` and `fractal_renderer/` code they call). Import-free, so the CLI and the recipe
schema can show these defaults without loading numpy.

Note: `fractal_renderer/make_fractaldb.py`'s argparse defaults (weights_0.1.csv, 100,000
iterations, 512 px) are *not* what FractalDB-1k used; exe.sh overrides each of them.
"""

from __future__ import annotations

# --- the category search (exe.sh: `param_search/ifs_search.py --rate=0.2 --category=1000
#     --numof_point=100000`) ---
CATEGORIES = 1000  # exe.sh: numof_category=1000
FILL_RATE = 0.2  # exe.sh: fillrate=0.2; a system is kept if its points cover >= 20% of the pixels
SEARCH_POINTS = 100_000  # exe.sh: numof_point=100000
SEARCH_SIZE = 512  # ifs_search.py: draw_point(512, 512, 6, 6, ...)
SEARCH_PAD = 6  # ifs_search.py: the same call's padding
MIN_MAPS, MAX_MAPS = 2, 7  # ifs_search.py: np.random.randint(2, 8) affine maps per system
COEFF_LOW, COEFF_HIGH = -1.0, 1.0  # ifs_search.py: np.random.uniform(-1.0, 1.0, 6) per map (a..f)

# --- rendering (exe.sh: `fractal_renderer/make_fractaldb.py --image_size_x=362 --image_size_y=362
#     --iteration=200000 --draw_type=patch_gray --weight_csv=weights_0.4.csv`) ---
SIZE = 362  # exe.sh: imagesize=362
RENDER_POINTS = 200_000  # exe.sh: numof_ite=200000 chaos-game iterations per image
WEIGHT_STEP = 0.4  # exe.sh: weight=0.4 -> weights_0.4.csv: a..f times 1 - 2s, 1 - s, 1 + s, 1 + 2s
#                    = 0.2, 0.6, 1.4, 1.8 (plus the unchanged system once): 25 variants
VARIANTS = 25  # rows of weights_0.4.csv
REPEATS = 10  # make_fractaldb.py: --instance 10 patch renderings per variant ("10 => 1000 instance")
FLIPS = 4  # ifs_function.draw_patch saves each render as flip0..flip3 (none, vertical, horizontal, both)
INSTANCES = VARIANTS * REPEATS * FLIPS  # 1000 images per category
PAD = 6  # make_fractaldb.py: --pad_size_x/y default 6
PATCH = 3  # ifs_function.make_patch3_3: a 3x3 patch per point ...
GRAY = 127  # ... drawn in gray 127 on black ('patch_gray')

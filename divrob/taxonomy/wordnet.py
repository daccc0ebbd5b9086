"""WordNet 3.0 through nltk, found wherever it is installed.

`ensure_wordnet()` returns nltk's WordNet corpus reader. It looks, in order, for:

1. WordNet already on nltk's data path (`python -m nltk.downloader wordnet`);
2. ``$DIVROB_NLTK_DATA/corpora/wordnet`` made by an earlier call (see 3);
3. the Debian/Ubuntu WordNet 3.0 database (packages ``wordnet-base`` and
   ``wordnet-sense-index``, dict files in ``/usr/share/wordnet``; ``$WNSEARCHDIR`` is also
   honoured). nltk only opens WordNet from ``corpora/wordnet`` under one of its data roots,
   and recent nltk (3.9+, ``nltk.pathsec``) refuses symlinks that resolve outside it,
   multiply-linked files (hard links) and files writable by other accounts, so the dict
   files (36 MB) are *copied* (mode 0644) once into ``<root>/corpora/wordnet/``, where
   root is ``$DIVROB_NLTK_DATA`` or else ``~/nltk_data`` (nltk's own first search root, so
   plain ``from nltk.corpus import wordnet`` finds it afterwards too), and the root is
   added to ``nltk.data.path`` if it is not there. The Debian package lacks the
   ``lexnames`` file that nltk reads first; it is a fixed 45-line table (lexnames(5WN))
   and is written here.

Only WordNet 3.0 is accepted: ImageNet wnids are WordNet 3.0 noun offsets, and 3.1 moved them.
"""

from __future__ import annotations

import os
from pathlib import Path

from divrob.errors import DivrobError

INSTALL_HINT = (
    "install WordNet 3.0 with `sudo apt-get install wordnet-base wordnet-sense-index` "
    "(Debian/Ubuntu), or `python -m nltk.downloader wordnet` where there is internet"
)

# Files nltk's WordNetCorpusReader opens (its _FILES), minus lexnames which we write.
_DICT_FILES = (
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)

# WordNet 3.0 lexicographer files, in file-number order (lexnames(5WN)); the third field
# is the syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb).
_LEXNAMES = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
    ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
    ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1),
    ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1), ("noun.location", 1),
    ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1),
    ("noun.relation", 1), ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1),
    ("noun.time", 1), ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2),
    ("verb.communication", 2), ("verb.competition", 2), ("verb.consumption", 2),
    ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2),
    ("verb.weather", 2), ("adj.ppl", 3),
)

SYSTEM_DICT_DIRS = (
    "/usr/share/wordnet",  # Debian, Ubuntu
    "/usr/local/WordNet-3.0/dict",  # Princeton source install
    "/usr/share/WordNet-3.0/dict",
)


class TaxonomyError(DivrobError):
    """A label hierarchy that is unavailable or asked for something it does not have."""

    exit_code = 2


def wordnet_copy_root() -> Path:
    """The nltk data root that receives a copy of the system WordNet."""
    env = os.environ.get("DIVROB_NLTK_DATA")
    return Path(env).expanduser() if env else Path.home() / "nltk_data"


def system_wordnet_dir() -> Path | None:
    """The first directory holding a complete WordNet 3.0 database, or None."""
    candidates = []
    if os.environ.get("WNSEARCHDIR"):
        candidates.append(os.environ["WNSEARCHDIR"])
    candidates.extend(SYSTEM_DICT_DIRS)
    for cand in candidates:
        d = Path(cand)
        if all((d / f).is_file() for f in _DICT_FILES) and _is_wordnet_30(d):
            return d
    return None


def _is_wordnet_30(dict_dir: Path) -> bool:
    # The license header at the top of every data file names the version.
    with open(dict_dir / "data.noun", "rb") as fp:
        head = fp.read(4096)
    return b"WordNet 3.0 " in head


def copy_system_wordnet(dict_dir: Path, root: Path) -> Path:
    """Make `root`/corpora/wordnet an nltk-readable WordNet built from `dict_dir`.

    Copies each dict file and writes lexnames: nltk's path sandbox rejects symlinks and
    hard links to files outside its data roots.
    Built in a temporary directory and renamed, so a half-made corpus is never visible.
    """
    import shutil
    import tempfile

    target = root / "corpora" / "wordnet"
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet.", dir=target.parent))
    try:
        for name in _DICT_FILES:
            shutil.copyfile(dict_dir / name, tmp / name)
            os.chmod(tmp / name, 0o644)
        lines = [f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(_LEXNAMES)]
        (tmp / "lexnames").write_text("".join(lines))
        os.chmod(tmp / "lexnames", 0o644)
        os.chmod(tmp, 0o755)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():  # a stale corpus nltk would refuse (e.g. made of links)
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if _complete(target):  # another process won the race
            return target
        raise
    return target


def _complete(corpus_dir: Path) -> bool:
    # Plain single-link files only: anything else nltk's sandbox would refuse to read.
    for name in _DICT_FILES + ("lexnames",):
        path = corpus_dir / name
        if path.is_symlink() or not path.is_file() or path.stat().st_nlink != 1:
            return False
    return True


def _nltk_has_wordnet() -> bool:
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
        return True
    except LookupError:
        pass
    try:
        nltk.data.find("corpora/wordnet.zip")
        return True
    except LookupError:
        return False


def ensure_wordnet():
    """Return nltk's WordNet 3.0 reader, copying the system database into nltk if needed.

    Raises TaxonomyError with the install command when no WordNet can be found.
    """
    import nltk

    if not _nltk_has_wordnet():
        root = wordnet_copy_root()
        if not _complete(root / "corpora" / "wordnet"):
            dict_dir = system_wordnet_dir()
            if dict_dir is None:
                raise TaxonomyError(f"WordNet is not installed: {INSTALL_HINT}")
            try:
                copy_system_wordnet(dict_dir, root)
            except OSError as exc:
                raise TaxonomyError(
                    f"found WordNet in {dict_dir} but could not copy it into {root} ({exc}); "
                    "set DIVROB_NLTK_DATA to a writable directory"
                ) from exc
        if str(root) not in nltk.data.path:
            nltk.data.path.append(str(root))

    from nltk.corpus import wordnet as wn

    try:
        wn.ensure_loaded()
    except (LookupError, OSError, ValueError) as exc:  # nltk.pathsec raises the latter two
        raise TaxonomyError(f"WordNet could not be loaded ({exc}); {INSTALL_HINT}") from exc
    version = wn.get_version()
    if version != "3.0":
        raise TaxonomyError(
            f"nltk found WordNet {version}, but ImageNet wnids are WordNet 3.0 offsets; "
            f"{INSTALL_HINT}"
        )
    return wn


def synset_of_wnid(wn, wnid: str):
    """The WordNet synset of an ImageNet wnid such as 'n01440764'."""
    return wn.synset_from_pos_and_offset(wnid[0], int(wnid[1:]))


def wnid_of_synset(synset) -> str:
    return f"{synset.pos()}{synset.offset():08d}"

"""Run notebooks top to bottom and store their outputs in place (the docs are built from the stored outputs).

    python tools/run_notebooks.py nbs/35_lifting.ipynb nbs/index.ipynb [--force slow]

Cells flagged with a test flag of settings.ini (`#| slow`, `#| cuda`, `#| notest`) or `#| eval: false` are not run
and keep the outputs they have, unless `--force` names their flag; `nbdev_export` cells are not run. Progress bars
are off (TQDM_DISABLE=1). The first failing cell stops the notebook and leaves its file untouched. Afterwards run
`nbdev_clean` (execution counts) and `python tools/build_docs.py`.
"""
import argparse, os, sys, time
from pathlib import Path

os.environ.setdefault('TQDM_DISABLE', '1')  # no progress bars in the stored outputs (read when tqdm is imported)

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from nbdev.config import get_config
from nbdev.process import extract_directives  # nbdev's own reading of `#|` lines, as its test runner does

ROOT = Path(__file__).resolve().parents[1]
def skipped(cell, flags:set)->bool:
    "Whether `cell` is left as it is: markdown, the export call, `eval: false`, or a flag in `flags`."
    if cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source: return True
    d = extract_directives(cell, remove=False)
    return d.get('eval:', [''])[0].lower() == 'false' or bool(flags & d.keys())


def run_notebook(path:Path, flags:set)->float:
    "Execute `path` in its folder and write it back with the new outputs; the seconds it took."
    nb, t0, cwd = read_nb(path), time.time(), os.getcwd()
    shell = CaptureShell(path)
    try:
        os.chdir(path.parent)
        shell.run_all(nb, exc_stop=True, preproc=lambda c: skipped(c, flags))
    except Exception:
        sys.stderr.write(shell.prettytb(fname=path) + '\n')
        raise SystemExit(f'{path}: a cell failed; the notebook was not written')
    finally: os.chdir(cwd)
    write_nb(nb, path)
    return time.time() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('notebooks', nargs='+', type=Path)
    p.add_argument('--force', nargs='*', default=[], help='test flags whose cells run too, e.g. slow')
    a = p.parse_args()
    flags = set(get_config(path=ROOT).tst_flags.split()) - set(a.force)
    sys.path.insert(0, str(ROOT))
    for nb in a.notebooks:
        print(f'{nb}: {run_notebook(nb.resolve(), flags):.0f} s', flush=True)


if __name__ == '__main__':
    main()

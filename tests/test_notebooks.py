"Runs every notebook in `nbs/` as a test, with nbdev's own runner and skip flags."
import os
from pathlib import Path

import pytest
import nbdev.test as nbtest  # not `from nbdev.test import test_nb`: pytest would collect it
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
             if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT/'nbs').parts))


@pytest.mark.parametrize('nb', NBS, ids=[str(p.relative_to(ROOT/'nbs')) for p in NBS])
def test_notebook(nb):
    "Each notebook's cells run without error; `DIFFHPE_TEST_FLAGS='slow cuda'` also runs flagged cells."
    cfg = get_config(path=ROOT)
    force = os.environ.get('DIFFHPE_TEST_FLAGS', '').split()
    ok, secs = nbtest.test_nb(nb, skip_flags=cfg.tst_flags.split(), force_flags=force, basepath=ROOT, do_print=False)
    assert ok, f'{nb.name} failed: run `nbdev_test --path {nb.relative_to(ROOT)}` to see the failing cell'


def test_notebooks_found():
    "The suite is not silently empty."
    assert len(NBS) >= 2, NBS

"The built wheel carries every shipped asset: models, the benchmark and the measured results the docs read."
import shutil, subprocess, sys, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_every_asset(tmp_path):
    "A non-editable install (Colab, pip from the repository) finds the same assets as this checkout."
    src = tmp_path/'src'  # a fresh copy: no build/ folder left by an earlier build can fill the gaps
    shutil.copytree(ROOT/'diffhpe', src/'diffhpe', ignore=shutil.ignore_patterns('__pycache__'))
    for f in ('setup.py', 'settings.ini', 'README.md'): shutil.copy(ROOT/f, src/f)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', str(src), '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path/'dist')],
                   check=True, capture_output=True)
    names = set(zipfile.ZipFile(next((tmp_path/'dist').glob('*.whl'))).namelist())
    assets = {p.relative_to(ROOT).as_posix() for p in (ROOT/'diffhpe'/'assets').rglob('*') if p.is_file()}
    assert len(assets) > 10 and any('/results/' in a for a in assets), sorted(assets)
    assert assets <= names, f'missing from the wheel: {sorted(assets - names)}'

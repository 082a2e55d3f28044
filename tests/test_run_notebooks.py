"""`tools/run_notebooks.py`: outputs stored in place, flagged cells left as they are, a failing notebook left untouched."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cell(source, outputs=()):
    return {'cell_type': 'code', 'execution_count': None, 'id': f'c{abs(hash(source)) % 10**8}', 'metadata': {},
            'outputs': list(outputs), 'source': source}


def notebook(path, cells):
    path.write_text(json.dumps({'cells': cells, 'metadata': {'kernelspec': {'language': 'python', 'name': 'python3'}},
                                'nbformat': 4, 'nbformat_minor': 5}))
    return path


def run(*args):
    return subprocess.run([sys.executable, str(ROOT/'tools'/'run_notebooks.py'), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_outputs_stored_flags_kept(tmp_path):
    kept = {'name': 'stdout', 'output_type': 'stream', 'text': ['from an earlier run\n']}
    nb = notebook(tmp_path/'a.ipynb', [
        {'cell_type': 'markdown', 'id': 'm1', 'metadata': {}, 'source': '# Title'},
        cell("from pathlib import Path\nprint(6 * 7, Path.cwd().name)"),
        cell("#| slow\nraise SystemError('a slow cell ran')", [kept]),
        cell("#| eval: false\nraise SystemError('an eval: false cell ran')"),
        cell("import os\nprint(os.environ.get('TQDM_DISABLE'))"),
    ])
    p = run(nb)
    assert p.returncode == 0, p.stderr[-2000:]
    cells = json.loads(nb.read_text())['cells']
    assert ''.join(cells[1]['outputs'][0]['text']) == f'42 {tmp_path.name}\n'  # run in the notebook's folder
    assert cells[2]['outputs'] == [kept] and cells[3]['outputs'] == []  # not run, outputs as they were
    assert ''.join(cells[4]['outputs'][0]['text']) == '1\n'
    p = run(nb, '--force', 'slow')  # the forced flag runs, fails, and the file stays as it was
    assert p.returncode != 0 and 'a slow cell ran' in p.stderr + p.stdout
    assert json.loads(nb.read_text())['cells'][2]['outputs'] == [kept]

"""The shipped models under the test occlusion patterns (the first row of the paper's robustness study), into one JSON.

    python tools/occlusion_shipped.py --out diffhpe/assets/results/occlusion.json [--every 16] [--models NAME ... --merge RECORD [--keep-replaced-as TEXT]]

Every model of `diffhpe.wrapper.PRETRAINED` that is installed is scored by `run_evaluation` on the same test
sequences, with no occlusion and under each pattern of `diffhpe.windows.ALL_PATTERNS` (seeded: the same hidden
keypoints for every model), each with its own sampler settings (`default_sampling`), H = 5 for the stochastic
models (1 for MixSTE and for DiffPose's released mode, whose hypotheses are copies). One torch thread.
"""
import argparse, json, time
from pathlib import Path

import torch

from diffhpe.models import sampling_for
from diffhpe.recipes import run_evaluation, load_splits
from diffhpe.windows import ALL_PATTERNS
from diffhpe.wrapper import PRETRAINED, pretrained_dir, load_model


def hypotheses_for(model, H:int)->int:
    "H for a model: 1 where the hypotheses cannot differ."
    if not sampling_for(model): return 1
    if hasattr(model, 'steps_for') and model.config.mode == 'released': return 1  # DiffPose's released mode: copies (by capability)
    return H


def merge_record(old:dict, out:dict, key, keep_as:str=None)->dict:
    "`out` with its rows merged into the earlier record `old`: a row of `old` with the key of a new row is replaced in its place (or kept too, as 'MODEL (keep_as)'), the others kept, new keys appended; `merged_from` lists the earlier commands."
    new = {key(r): r for r in out['rows']}
    replaced = [r for r in old.get('rows', []) if key(r) in new]
    rows = [new.pop(key(r), r) for r in old.get('rows', [])]
    rows += [r for r in out['rows'] if key(r) in new]
    notes = old.get('relabelled', [])
    if keep_as and replaced:  # the replaced rows stay, under their model's name with `keep_as` added
        kept_rows = [dict(r, model=f"{r['model']} ({keep_as})") for r in replaced]
        taken = {key(r) for r in rows} & {key(r) for r in kept_rows}
        if taken: raise ValueError(f'the record already has rows of {sorted({k for k in taken})}: choose another --keep-replaced-as than {keep_as!r}')
        rows += kept_rows
        notes = notes + [f"{out.get('date')}: the rows this run replaced ({', '.join(sorted({r['model'] for r in replaced}))}, "
                         f"from the record of {old.get('date')}) kept with ' ({keep_as})' added to the model's name"]
    kept = {k: v for k, v in old.items() if k not in out}
    return dict(kept, **{**out, 'rows': rows, 'merged_from': old.get('merged_from', []) + [f"{old.get('command')} ({old.get('date')})"]},
                **({'relabelled': notes} if notes else {}))


def add_merge_arguments(p:argparse.ArgumentParser):
    "The record scripts' `--merge` and `--keep-replaced-as` options."
    p.add_argument('--merge', default=None, help="an earlier record: its rows this run does not score are kept, this run's replace theirs")
    p.add_argument('--keep-replaced-as', default=None, help='with --merge: keep the rows this run replaces, as "MODEL (TEXT)"')


def merged(a, out:dict, key, part:str=None)->dict:
    "`out` merged into the record named by `--merge` (`merge_record`; `part`: the key under which a record nests its rows), or `out` itself without one."
    if not a.merge: return out
    old = json.loads(Path(a.merge).read_text())
    if part: return dict(out, **{part: merge_record(old[part], out[part], key, a.keep_replaced_as)})
    return merge_record(old, out, key, a.keep_replaced_as)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    p.add_argument('--every', type=int, default=16)
    p.add_argument('--hypotheses', type=int, default=5)
    p.add_argument('--models', nargs='*', default=None)
    add_merge_arguments(p)
    a = p.parse_args()
    torch.set_num_threads(1)
    splits = load_splits('cmu', 'gt')
    rows = []
    for name in a.models or PRETRAINED:
        if not (pretrained_dir(name)/'config.json').is_file(): print(f'{name}: not installed, skipped'); continue
        model = load_model(name)
        H = hypotheses_for(model, a.hypotheses)
        for pattern in ('none',) + ALL_PATTERNS:
            t0 = time.perf_counter()
            r = run_evaluation(model, splits=splits, every=a.every, occlusion=pattern, n_hypotheses=H, seed=0)
            o = r.overall
            rows.append({'model': name, 'test occlusion': pattern, 'MPJPE': o['MPJPE'], 'P-MPJPE': o['P-MPJPE'], 'symmetry': o['symmetry'],
                         'seg std': o['seg std'], 'H': H, 'sampler': {k: v for k, v in sampling_for(model).items()} or None,
                         'seconds': time.perf_counter() - t0, 'windows': r.settings['windows']})
            print(json.dumps(rows[-1]), flush=True)
    n_seq = len(splits['test'][::a.every])
    out = {'occlusion': {'protocol': f'test subjects, every {a.every}th sequence ({n_seq} sequences, {rows[0]["windows"]} windows), gt 2D; each model with its own '
                                     f'sampler settings, H={a.hypotheses} for the stochastic models (1 for MixSTE and DiffPose\'s released mode), mean; '
                                     'the shipped models, trained without occlusion; occlusions seeded (seed 0), the same for every model',
                         'command': f'python tools/occlusion_shipped.py --every {a.every} --hypotheses {a.hypotheses}' + (f' --models {" ".join(a.models)}' if a.models else ''),
                         'date': time.strftime('%Y-%m-%d'), 'rows': rows}}
    out = merged(a, out, lambda r: (r['model'], r['test occlusion']), part='occlusion')
    Path(a.out).write_text(json.dumps(out, indent=1))
    print('wrote', a.out)


if __name__ == '__main__':
    main()

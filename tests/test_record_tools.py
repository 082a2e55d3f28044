"""The record scripts' merging (`--merge`) and row order: a partial re-run replaces its rows in place and loses nothing else."""
import sys

import pytest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tools'))
from argparse import Namespace  # noqa: E402
from occlusion_shipped import merge_record, merged  # noqa: E402
from side_by_side import in_table_order  # noqa: E402


def test_merge_replaces_in_place_keeps_the_rest():
    old = {'command': 'first', 'date': '2026-01-01', 'note': 'only in the old record', 'merged_from': ['zeroth (2025-12-31)'],
           'rows': [{'model': 'a', 'v': 1}, {'model': 'b', 'v': 2}, {'model': 'c', 'v': 3}]}
    out = {'command': 'second', 'date': '2026-01-02', 'rows': [{'model': 'b', 'v': 20}, {'model': 'd', 'v': 40}]}
    m = merge_record(old, out, lambda r: r['model'])
    assert [(r['model'], r['v']) for r in m['rows']] == [('a', 1), ('b', 20), ('c', 3), ('d', 40)]
    assert (m['command'], m['date'], m['note']) == ('second', '2026-01-02', 'only in the old record')
    assert m['merged_from'] == ['zeroth (2025-12-31)', 'first (2026-01-01)']
    assert out['rows'] == [{'model': 'b', 'v': 20}, {'model': 'd', 'v': 40}]  # the new record is not modified


def test_merge_keeps_replaced_rows_under_a_new_name():
    old = {'command': 'first', 'date': '2026-01-01', 'rows': [{'model': 'a', 'split': 's', 'v': 1}, {'model': 'b', 'split': 's', 'v': 2}]}
    out = {'command': 'second', 'date': '2026-01-02', 'rows': [{'model': 'a', 'split': 's', 'v': 10}]}
    key = lambda r: (r['model'], r['split'])
    m = merge_record(old, out, key, keep_as='previous')
    assert [(r['model'], r['v']) for r in m['rows']] == [('a', 10), ('b', 2), ('a (previous)', 1)]
    assert m['relabelled'] == ["2026-01-02: the rows this run replaced (a, from the record of 2026-01-01) kept with ' (previous)' added to the model's name"]
    assert 'relabelled' not in merge_record(old, out, key)  # nothing kept, nothing noted
    again = dict(out, date='2026-01-03')
    with pytest.raises(ValueError, match='choose another --keep-replaced-as'): merge_record(m, again, key, keep_as='previous')
    assert [r['model'] for r in merge_record(m, again, key, keep_as='older')['rows']] == ['a', 'b', 'a (previous)', 'a (older)']


def test_table_order():
    rows = [dict(split=s, keypoints=k, model=m) for s, k, m in [('test-bodies', 'gt', 'x'), ('test', 'detected', 'linear'), ('test', 'gt', 'other'),
                                                                 ('test', 'gt', 'MixSTE'), ('test-views', 'gt', 'linear'), ('test', 'gt', 'linear')]]
    got = [(r['split'], r['keypoints'], r['model']) for r in in_table_order(rows, ['linear', 'MixSTE'])]
    assert got == [('test', 'gt', 'linear'), ('test', 'gt', 'MixSTE'), ('test', 'gt', 'other'), ('test', 'detected', 'linear'),
                   ('test-views', 'gt', 'linear'), ('test-bodies', 'gt', 'x')]


def test_merged_reads_the_earlier_record(tmp_path):
    f = tmp_path/'old.json'
    f.write_text('{"occlusion": {"command": "first", "date": "d1", "rows": [{"model": "a", "v": 1}, {"model": "b", "v": 2}]}}')
    out = {'occlusion': {'command': 'second', 'date': 'd2', 'rows': [{'model': 'b', 'v': 20}]}}
    key = lambda r: r['model']
    assert merged(Namespace(merge=None, keep_replaced_as=None), out, key, part='occlusion') is out  # no --merge: nothing read
    m = merged(Namespace(merge=str(f), keep_replaced_as='previous'), out, key, part='occlusion')['occlusion']
    assert [(r['model'], r['v']) for r in m['rows']] == [('a', 1), ('b', 20), ('b (previous)', 2)] and m['merged_from'] == ['first (d1)']

"""The offline docs build (`tools/build_docs.py`): builds the site from `nbs/` into a temp folder, twice, and checks
it statically and in a real headless Chromium (Debian's `chromium` driven by Playwright).

Without chromium or playwright the browser tests skip, unless `DIFFHPE_REQUIRE_BROWSER=1` (set in CI): then they fail.
`DIFFHPE_CHROMIUM` points at another Chromium binary; `DIFFHPE_DOCS_SCREENSHOT=path.png` keeps a copy of the screenshot.
"""
import functools, http.server, os, shutil, subprocess, sys, threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'tools'/'build_docs.py'
REQUIRE = os.environ.get('DIFFHPE_REQUIRE_BROWSER', '') == '1'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run', '--disable-sync']
NBS = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
             if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT/'nbs').parts))


def _build(dest: Path):
    "Start `python tools/build_docs.py` into `dest/site` (README into `dest/README.md`)."
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(SCRIPT), '--out', str(dest/'site'), '--readme', str(dest/'README.md')]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope='module')
def builds(tmp_path_factory):
    "Two independent builds, run side by side; returns their folders and logs."
    tmp = tmp_path_factory.mktemp('docs')
    procs = {name: _build(tmp/name) for name in ('a', 'b')}
    logs = {name: p.communicate(timeout=900)[0] for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, f'docs build failed:\n{logs[name]}'
    return {'a': tmp/'a', 'b': tmp/'b', 'log': logs['a'], 'tmp': tmp}


@pytest.fixture(scope='module')
def site(builds): return builds['a']/'site'


def _pages(site: Path): return sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html'))


def _expected_page(nb: Path) -> str:
    "nbdev's page name: numeric prefix stripped, lower case, .html."
    import re
    rel = nb.relative_to(ROOT/'nbs')
    return rel.with_name(re.sub(r'^\d+[a-zA-Z0-9]*_', '', rel.name.lower())).with_suffix('.html').as_posix()


# ---------------------------------------------------------------------------------------------------------
# Static checks
# ---------------------------------------------------------------------------------------------------------

def test_every_notebook_has_a_page(site):
    "One page per notebook (plus index.html), `.nojekyll`, and the stylesheet."
    pages = _pages(site)
    for nb in NBS: assert _expected_page(nb) in pages, f'{nb.name} has no page in {pages}'
    assert 'index.html' in pages
    assert (site/'.nojekyll').exists() and (site/'site.css').exists()


def test_build_is_deterministic(builds):
    "Two builds give byte-identical sites and READMEs (docs/ is committed; CI checks a rebuild leaves git clean)."
    a, b = builds['a'], builds['b']
    fa = sorted(p.relative_to(a).as_posix() for p in a.rglob('*') if p.is_file())
    fb = sorted(p.relative_to(b).as_posix() for p in b.rglob('*') if p.is_file())
    assert fa == fb
    differ = [f for f in fa if (a/f).read_bytes() != (b/f).read_bytes()]
    assert not differ, f'files differ between two builds: {differ}'


def test_pages_are_processed_by_nbdev(site):
    "nbdev's processors ran: no directives or export plumbing left, titles from the first cell, equations as MathML."
    import html, re
    for rel in _pages(site):
        text = (site/rel).read_text(encoding='utf-8')
        for block in re.findall(r'<div class="sourceCode cell-code">(.*?)</div>\s*</div>', text, flags=re.DOTALL):
            code = html.unescape(re.sub(r'<[^>]+>', '', block))
            assert not re.search(r'^\s*#\|', code, flags=re.MULTILINE), f'{rel}: nbdev directive left in\n{code}'
            assert 'nbdev_export()' not in code, f'{rel}: the hidden export cell is shown'
        assert 'nbdev-site:' not in text, f'{rel}: unresolved doc link'
        assert 'class="math-error"' not in text, f'{rel}: an equation could not be converted to MathML (see the build log)'
        prose = re.sub(r'<(pre|code)\b.*?</\1>', '', text.split('<main', 1)[-1], flags=re.DOTALL)
        assert '$$' not in prose, f'{rel}: raw $$ math left in the page'
        for bad in ('<script src="http', '<link rel="stylesheet" href="http', 'cdn.jsdelivr', 'cdnjs', 'unpkg.com'):
            assert bad not in text, f'{rel}: external resource {bad!r}'
    skel = [p for p in NBS if _expected_page(p) == 'skeleton.html']
    if skel:
        text = (site/'skeleton.html').read_text(encoding='utf-8')
        assert '<h1 class="title">Skeleton</h1>' in text
        assert 'id="mirror_pose"' in text, 'show_doc was not added for the exported mirror_pose'
        assert '<math' in text


def test_readme(builds):
    "README.md comes from nbs/index.ipynb after nbdev's processing (hidden cells gone, outputs kept)."
    index = ROOT/'nbs'/'index.ipynb'
    if not index.exists(): pytest.skip('nbs/index.ipynb does not exist yet')
    import json
    readme = (builds['a']/'README.md').read_text(encoding='utf-8')
    first = ''.join(json.loads(index.read_text(encoding='utf-8'))['cells'][0]['source'])
    title = next(l[2:].strip() for l in first.splitlines() if l.startswith('# '))
    assert readme.startswith(f'# {title}\n')
    assert 'nbdev_export' not in readme and '#| hide' not in readme and '#| export' not in readme
    assert 'from nbdev.showdoc import' not in readme


# ---------------------------------------------------------------------------------------------------------
# Browser checks
# ---------------------------------------------------------------------------------------------------------

def _chromium():
    for c in (os.environ.get('DIFFHPE_CHROMIUM'), '/usr/bin/chromium', shutil.which('chromium'),
              shutil.which('chromium-browser'), shutil.which('google-chrome')):
        if c and Path(c).exists(): return c
    return None


@pytest.fixture(scope='module')
def browser():
    reason = None
    try: from playwright.sync_api import sync_playwright
    except ImportError: reason = 'playwright is not installed (pip install playwright)'
    exe = _chromium()
    if reason is None and exe is None:
        reason = 'no Chromium found (apt-get install chromium, or set DIFFHPE_CHROMIUM)'
    if reason:
        if REQUIRE: pytest.fail(f'DIFFHPE_REQUIRE_BROWSER=1 but {reason}')
        pytest.skip(reason)
    with sync_playwright() as p:
        try: b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        except Exception as e:
            if REQUIRE: pytest.fail(f'cannot launch {exe}: {e}')
            pytest.skip(f'cannot launch {exe}: {e}')
        yield b
        b.close()


@pytest.fixture(scope='module')
def server(site):
    "Serve the built site over HTTP on localhost, like GitHub Pages would."
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    httpd.shutdown()
    httpd.server_close()


_COLLECT = """() => ({
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  images: Array.from(document.images).map(i => ({src: i.src.slice(0, 80), ok: i.complete && i.naturalWidth > 0})),
  math: Array.from(document.querySelectorAll('math')).map(m => {
          const r = m.getBoundingClientRect(); return [r.width, r.height]; }),
  sidebar: Array.from(document.querySelectorAll('#site-sidebar a[href]')).map(a => a.href),
  title: (document.querySelector('h1.title') || {}).textContent,
  sidebarBg: getComputedStyle(document.getElementById('site-sidebar')).backgroundColor,
  codeBg: Array.from(document.querySelectorAll('.cell-code .highlight')).slice(0, 1)
            .map(e => getComputedStyle(e).backgroundColor),
})"""


@pytest.fixture(scope='module')
def visited(browser, server, site):
    "Open every page once; collect console errors, outside requests, links, anchors, images, MathML sizes."
    ctx = browser.new_context(viewport={'width': 1280, 'height': 900})
    outside, errors = [], {}

    def route(r):
        if r.request.url.startswith(server): r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()
    ctx.route('**/*', route)
    res = {}
    for rel in _pages(site):
        page = ctx.new_page()
        errs = errors.setdefault(rel, [])
        page.on('console', lambda m, errs=errs: errs.append(f'console {m.type}: {m.text}') if m.type == 'error' else None)
        page.on('pageerror', lambda e, errs=errs: errs.append(f'page error: {e}'))
        page.on('requestfailed', lambda r, errs=errs: errs.append(f'request failed: {r.url}'))
        resp = page.goto(server + rel, wait_until='load')
        assert resp is not None and resp.ok, f'{rel}: HTTP {resp.status if resp else "?"}'
        res[rel] = page.evaluate(_COLLECT)
        page.close()
    ctx.close()
    return {'pages': res, 'errors': errors, 'outside': outside}


def test_pages_load_without_errors(visited):
    "Every page loads with no console errors, no script errors, no failed requests and nothing fetched from outside."
    bad = {k: v for k, v in visited['errors'].items() if v}
    assert not bad, bad
    assert not visited['outside'], f'pages request outside resources: {sorted(set(visited["outside"]))[:10]}'
    for rel, info in visited['pages'].items():
        assert info['title'] and info['title'].strip(), f'{rel}: no title'
        assert info['sidebarBg'] not in ('rgba(0, 0, 0, 0)', 'transparent'), f'{rel}: site.css not applied'
        for bg in info['codeBg']: assert bg not in ('rgba(0, 0, 0, 0)', 'transparent'), f'{rel}: code not styled'


def test_internal_links_resolve(visited, server, site):
    "Every link inside the site points to an existing file and, for `page#anchor`, to an element with that id."
    pages, broken = visited['pages'], []
    for rel, info in pages.items():
        for href in info['links']:
            if not href.startswith(server): continue
            u = urlsplit(href)
            target = unquote(u.path).lstrip('/') or 'index.html'
            if target.endswith('/'): target += 'index.html'
            if not (site/target).is_file(): broken.append(f'{rel} -> {href} (no such file)')
            elif u.fragment and target in pages and unquote(u.fragment) not in pages[target]['ids']:
                broken.append(f'{rel} -> {href} (no id {u.fragment!r} on {target})')
    assert not broken, '\n'.join(sorted(set(broken)))


def test_images_load(visited):
    "Every <img> (figures written by the build, markdown images) decodes with a nonzero natural width."
    bad = [(rel, i['src']) for rel, info in visited['pages'].items() for i in info['images'] if not i['ok']]
    assert not bad, bad
    assert sum(len(info['images']) for info in visited['pages'].values()) > 0, 'no figure anywhere in the site'


def test_math_is_rendered(visited, site):
    "Pages with equations carry MathML, and the browser lays it out with a nonzero size."
    with_math = [rel for rel in visited['pages'] if '<math' in (site/rel).read_text(encoding='utf-8')]
    assert with_math, 'no page has an equation'
    for rel in with_math:
        sizes = visited['pages'][rel]['math']
        assert any(w > 0 and h > 0 for w, h in sizes), f'{rel}: MathML has zero size {sizes[:5]}'


def test_sidebar_lists_every_page(visited, server):
    "The sidebar of every page links every page of the site."
    everything = {server + rel for rel in visited['pages']}
    for rel, info in visited['pages'].items():
        listed = {h.split('#')[0] for h in info['sidebar']}
        assert everything <= listed, f'{rel}: sidebar misses {sorted(everything - listed)}'


def test_screenshot(browser, server, site, builds):
    "A screenshot of a chapter page (code and a figure if there is one) is not blank."
    from PIL import Image
    pages = _pages(site)
    texts = {rel: (site/rel).read_text(encoding='utf-8') for rel in pages}
    rel = next((r for r in pages if '<img' in texts[r] and 'cell-code' in texts[r] and r != 'index.html'),
               next((r for r in pages if 'cell-code' in texts[r]), 'index.html'))
    page = browser.new_page(viewport={'width': 1280, 'height': 900})
    page.goto(server + rel, wait_until='load')
    shot = builds['tmp']/f'screenshot-{Path(rel).stem}.png'
    page.screenshot(path=str(shot), full_page=False)
    page.close()
    print(f'\nscreenshot of {rel}: {shot}')
    if os.environ.get('DIFFHPE_DOCS_SCREENSHOT'): shutil.copyfile(shot, os.environ['DIFFHPE_DOCS_SCREENSHOT'])
    im = Image.open(shot).convert('RGB')
    assert im.size == (1280, 900)
    colours = im.getcolors(maxcolors=1 << 20)
    assert len(colours) > 50, f'screenshot has only {len(colours)} colours'
    assert max(c for c, _ in colours) < 0.95 * im.size[0] * im.size[1], 'screenshot is (almost) one colour'

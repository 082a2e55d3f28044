#!/usr/bin/env python
"""Build the documentation site and README.md offline, without Quarto.

Each notebook in `nbs/` goes through nbdev's own docs processors (`nbdev.processors.FilterDefaults`, the
processors `nbdev_docs` / `nbdev_proc_nbs` apply before Quarto: frontmatter from the title cell, `#| hide`,
`#| export` cleanup, `show_doc` for exported symbols, doc links, ...). The Quarto cell options nbdev leaves
for Quarto (`echo`, `output: asis`, `include`, `code-fold`, `fig-cap`, `warning`) are applied here, then
nbconvert's HTMLExporter renders the page with the template in `tools/docs_template/`. Equations in markdown
become MathML at build time (latex2mathml), so the site needs no JavaScript, CDN or web font.

    python tools/build_docs.py               # site into docs/, README.md from nbs/index.ipynb
    python tools/build_docs.py --out DIR     # site into DIR
    python tools/build_docs.py --check       # build into a temp dir; exit 1 if docs/ or README.md are stale

The package must be importable (`pip install -e .`); without the install the repository root is put on
`sys.path` and the package's doc-link index (`_modidx.py`) is registered by hand, which gives the same output.
"""
from __future__ import annotations

import argparse, base64, filecmp, html, os, posixpath, re, shutil, sys, tempfile, time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = Path(__file__).resolve().parent/'docs_template'
MARKER = '.nojekyll'  # present in every built site; an output folder without it is never wiped
AUTO = 'nbdev-site:/'  # temporary scheme for nbdev's doc links, resolved once every page's anchors are known
CHROME_IDS = {'site-sidebar', 'site-content', 'site-toc', 'title-block'}
WARNINGS = []  # messages of the last build (also printed to stderr)

# nbformat -> jsonschema imports the optional `rfc3987_syntax`, which compiles lark grammars for ~1.5 s; the IRI
# formats it validates are not used by the notebook schema, so the docs build does without it.
sys.modules.setdefault('rfc3987_syntax', None)


def _warn(msg: str):
    if msg not in WARNINGS:
        WARNINGS.append(msg)
        print(f'warning: {msg}', file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Setup: importable package, nbdev's doc-link index
# ---------------------------------------------------------------------------------------------------------

def _setup_imports(root: Path, lib_name: str):
    "Make `lib_name` importable from `root` and visible to nbdev's doc links even when it is not pip-installed."
    if str(root) not in sys.path: sys.path.insert(0, str(root))
    import nbdev.doclinks as dl
    from importlib.metadata import EntryPoint
    if getattr(dl.entry_points, '_docs_shim', False): return
    if any(e.name == lib_name for e in dl.entry_points(group='nbdev')): return
    if not (root/lib_name/'_modidx.py').exists(): return
    orig, extra = dl.entry_points, EntryPoint(name=lib_name, value=f'{lib_name}._modidx:d', group='nbdev')

    def entry_points(*args, **kwargs):
        eps = list(orig(*args, **kwargs))
        return eps + [extra] if kwargs.get('group') == 'nbdev' else eps
    entry_points._docs_shim = True
    dl.entry_points = entry_points
    dl._build_lookup_table.cache_clear()


@contextmanager
def _cwd(path):
    old = os.getcwd()
    os.chdir(path)
    try: yield
    finally: os.chdir(old)


@contextmanager
def _env(**kw):
    old = {k: os.environ.get(k) for k in kw}
    os.environ.update(kw)
    try: yield
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v


# ---------------------------------------------------------------------------------------------------------
# Notebook processing (nbdev) and Quarto cell options
# ---------------------------------------------------------------------------------------------------------

def find_notebooks(nbs: Path) -> list:
    "Notebooks under `nbs`, skipping files and folders that start with `_` or `.` (as nbdev does)."
    return sorted((p for p in nbs.rglob('*.ipynb')
                   if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts)),
                  key=lambda p: p.relative_to(nbs).as_posix())


def page_href(rel: str) -> str:
    "`01_skeleton.ipynb` -> `skeleton.html`, with nbdev's own rule (also used for its doc links)."
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(Path(rel)).as_posix()


def process_notebook(path: Path):
    "Run nbdev's docs processors on the notebook at `path`: returns (nbformat notebook, frontmatter dict)."
    import nbformat
    from execnb.nbio import read_nb, nb2str
    from nbdev.processors import FilterDefaults
    with _cwd(path.parent), _env(IN_TEST='1'):  # as nbdev.serve_drv does; cwd like nbdev_test
        nb = read_nb(path)
        FilterDefaults()(nb)
    fm = dict(getattr(nb, 'frontmatter_', {}) or {})
    nbn = nbformat.reads(nb2str(nb), as_version=4)  # joins multi-line strings
    cells = nbn.cells
    if cells and cells[0].cell_type == 'raw' and cells[0].source.lstrip().startswith('---'): cells.pop(0)
    return nbn, fm


_re_opt = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_objid = re.compile(r' at 0x[0-9a-fA-F]+')
# External stylesheets in HTML outputs (font-awesome in matplotlib's jshtml animations) cannot load offline;
# site.css draws the animation buttons' icons instead.
_re_ext_css = re.compile(r'<link\s+rel="stylesheet"\s+href="https?://[^"]*"\s*/?>\s*')


def _scalar(s: str):
    import yaml
    try: v = yaml.safe_load(s)
    except Exception: return s
    return v if isinstance(v, (str, bool, int, float)) else s


def cell_options(source: str):
    "Split leading Quarto `#| key: value` options off a code cell: returns (options, remaining source)."
    lines, opts = source.splitlines(), {}
    i = 0
    while i < len(lines) and (m := _re_opt.match(lines[i])):
        opts[m.group(1)] = _scalar(m.group(2))
        i += 1
    return opts, '\n'.join(lines[i:])


def _false(v): return v is False or str(v).lower() == 'false'


def _text(v): return ''.join(v) if isinstance(v, list) else (v or '')


def apply_cell_options(nb):
    "Apply the Quarto options nbdev leaves in code cells, as Quarto would; make outputs deterministic."
    keep = []
    for cell in nb.cells:
        if cell.cell_type == 'code': cell.execution_count = None
        cell.metadata.pop('docs', None)
        if cell.cell_type != 'code':
            keep.append(cell)
            continue
        opts, src = cell_options(cell.source)
        cell.source = src
        if _false(opts.get('include', True)): continue
        d = {}
        if _false(opts.get('echo', True)) or not src.strip():
            cell.metadata['transient'] = {'remove_source': True}
        if _false(opts.get('output', True)): cell.outputs = []
        if str(opts.get('output', '')).lower() == 'asis': d['asis'] = True
        if _false(opts.get('warning', True)):
            cell.outputs = [o for o in cell.outputs if not (o.output_type == 'stream' and o.name == 'stderr')]
        fold = opts.get('code-fold')
        if fold is not None and not _false(fold): d['fold'] = 'show' if str(fold).lower() == 'show' else 'hide'
        if 'code-summary' in opts: d['summary'] = str(opts['code-summary'])
        if 'fig-cap' in opts: d['figcap'] = str(opts['fig-cap'])
        for o in cell.outputs:
            if o.output_type == 'execute_result': o.execution_count = None
            if o.output_type == 'stream': o.text = _re_objid.sub('', _text(o.text))
            for mime in ('text/plain', 'text/markdown', 'text/html'):
                if mime in o.get('data', {}): o.data[mime] = _re_objid.sub('', _text(o.data[mime]))
            if 'text/html' in o.get('data', {}): o.data['text/html'] = _re_ext_css.sub('', o.data['text/html'])
            if d.get('asis') and 'text/markdown' in o.get('data', {}):
                o.data['text/markdown'] = _escape_heading_underscores(o.data['text/markdown'])
        if cell.metadata.get('transient') and not cell.outputs: continue
        cell.metadata['docs'] = d
        keep.append(cell)
    nb.cells = keep
    for i, cell in enumerate(nb.cells): cell['id'] = f'cell-{i}'
    nb.metadata.pop('widgets', None)
    return nb


def _escape_heading_underscores(md: str) -> str:
    "`### Skeleton.__len__` would render as bold; escape the underscores of `show_doc` headings."
    return re.sub(r'^(#{1,6} .*)$', lambda m: re.sub(r'(?<!\\)_', r'\\_', m.group(1)), md, flags=re.MULTILINE)


# ---------------------------------------------------------------------------------------------------------
# Markdown: Quarto/pandoc syntax nbdev emits, math to MathML, links and anchors
# ---------------------------------------------------------------------------------------------------------

_re_fence = re.compile(r'^\s*(```|~~~)')
_re_div = re.compile(r'^\s*:::+\s*(?:\{([^}]*)\}|([\w.-]+))?\s*$')
_re_link_attrs = re.compile(r'(!?\[[^\]\n]*\]\([^)\n]*\))\{([^}\n]*)\}')


def preprocess_markdown(md: str, for_html: bool = True) -> str:
    "Turn pandoc link attributes and Quarto fenced divs (`::: {.callout-note}`) into plain markdown/HTML."
    out, in_code = [], False
    for line in md.split('\n'):
        if _re_fence.match(line): in_code = not in_code
        if in_code:
            out.append(line)
            continue
        m = _re_div.match(line)
        if m and (m.group(1) is not None or m.group(2) or line.strip().strip(':') == ''):
            if not for_html: continue
            attrs = m.group(1) if m.group(1) is not None else (m.group(2) or None)
            if attrs is None: out.append('\n</div>\n')
            else:
                classes = ' '.join(c[1:] for c in attrs.split() if c.startswith('.')) or attrs.strip('.')
                out.append(f'\n<div class="{html.escape(classes)}">\n')
            continue

        def _attrs(m):
            if not for_html: return m.group(1)
            if 'float:right' in m.group(2).replace(' ', ''): return f'<span class="source-link">{m.group(1)}</span>'
            return m.group(1)
        out.append(_re_link_attrs.sub(_attrs, line))
    return '\n'.join(out)


_ENV_MAP = {'aligned': 'split', 'align': 'align*', 'alignat': 'align*', 'alignat*': 'align*', 'eqnarray': 'align*',
            'eqnarray*': 'align*', 'gather': 'gathered', 'gather*': 'gathered'}
_re_env = re.compile(r'\\(begin|end)\{([a-zA-Z]+\*?)\}')
_re_unknown = re.compile(r'<m[io][^>]*>(\\[a-zA-Z]+)</m[io]>')


_re_fence_mo = re.compile(r'<mo>(&#x0(?:2016|007C|2223|27E8|27E9|2308|2309|230A|230B|005B|005D|007B|007D);)</mo>')
_re_ops = re.compile(r'\\(arg|tr|Tr|sgn|diag|rank)(?![a-zA-Z])')  # operators latex2mathml does not know


def _normalise_tex(tex: str) -> str:
    def env(m):
        kind, name = m.groups()
        if name in ('equation', 'equation*', 'displaymath', 'math'): return ''
        if name == 'gathered': return r'\begin{array}{c}' if kind == 'begin' else r'\end{array}'
        name = _ENV_MAP.get(name, name)
        if name == 'gathered': return r'\begin{array}{c}' if kind == 'begin' else r'\end{array}'
        return f'\\{kind}{{{name}}}'
    tex = _re_env.sub(env, tex)
    tex = re.sub(r'\\(label|tag)\{[^}]*\}', '', tex)
    tex = _re_ops.sub(r'\\operatorname{\1}', tex).replace(r'\nolimits', '')
    return tex.replace(r'\nonumber', '').replace(r'\notag', '').strip()


def tex_to_mathml(tex: str, display: bool, where: str = '') -> str:
    "LaTeX -> MathML with latex2mathml; unsupported input gives a visible `.math-error` span and a warning."
    from latex2mathml.converter import convert
    t = _normalise_tex(tex)
    err = None
    try:
        out = convert(t, display='block' if display else 'inline')
        unknown = _re_unknown.findall(out)
        if unknown: err = f'unsupported command(s) {", ".join(sorted(set(unknown)))}'
    except Exception as e: err = f'{type(e).__name__}: {e}'
    if err:
        _warn(f'{where}: cannot convert equation ${tex}$ to MathML ({err})')
        return f'<code class="math-error" title="{html.escape(err)}">{html.escape(tex)}</code>'
    if r'\sim' in t and '~' not in t.replace(r'\sim', ''): out = out.replace('<mi>&#x0007E;</mi>', '<mo>&#x0223C;</mo>')
    # As in LaTeX, only \left/\right delimiters stretch (Chromium would stretch a bare \| or \lVert to a sum's height)
    return _re_fence_mo.sub(r'<mo stretchy="false">\1</mo>', out)


def slugify(text: str) -> str:
    "Heading id like pandoc's: lower case, keep letters, digits, `_`, `-`, `.`; spaces to `-`."
    s = html.unescape(re.sub(r'<[^>]+>', '', text)).strip().lower().replace('\\_', '_')
    s = re.sub(r'[^\w\s.-]', '', s)
    return re.sub(r'\s+', '-', s) or 'section'


# ---------------------------------------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------------------------------------

@dataclass
class Page:
    src: Path  # the notebook
    rel: str  # notebook path relative to nbs/, posix
    href: str  # output path relative to the site root, posix
    title: str = ''
    description: str = ''
    nb: object = None
    body: str = ''
    ids: set = field(default_factory=set)
    toc: list = field(default_factory=list)
    title_html: str = ''
    description_html: str = ''

    @property
    def dir(self): return posixpath.dirname(self.rel)

    @property
    def root(self): return '../' * self.href.count('/')

    def new_id(self, text):
        base = slugify(text)
        hid, i = base, 0
        while hid in self.ids or hid in CHROME_IDS:
            i += 1
            hid = f'{base}-{i}'
        self.ids.add(hid)
        return hid

    @property
    def title_text(self): return html.unescape(re.sub(r'<[^>]+>', '', self.title_html)).strip() or self.title

    @property
    def description_text(self): return html.unescape(re.sub(r'<[^>]+>', '', self.description_html)).strip()


def _rel(target: str, from_href: str) -> str:
    "Relative URL from the page at `from_href` to `target` (both relative to the site root)."
    return posixpath.relpath(target, posixpath.dirname(from_href) or '.')


class Site:
    def __init__(self, root: Path, out: Path):
        from nbdev.config import get_config
        self.root, self.out = Path(root).resolve(), Path(out).resolve()
        self.cfg = cfg = get_config(path=self.root)
        self.nbs = Path(cfg.nbs_path).resolve()
        self.title = cfg.get('title', cfg.lib_name)
        self.git_url = cfg.get('git_url', '')
        self.language = 'en'
        self.site_url = (cfg.get('doc_host', '') + cfg.get('doc_baseurl', '')).rstrip('/')
        self.has_styles = (self.nbs/'styles.css').exists()
        self.assets = set()  # files referenced from markdown, relative to nbs/
        self.pages, self.page = [], None
        _setup_imports(self.root, cfg.lib_name)

    # -- links --------------------------------------------------------------------------------------------
    def page_for(self, target: str):
        "The page for `target` (a notebook or html path relative to nbs/), or None."
        for p in self.pages:
            if target in (p.rel, p.href): return p
        return None

    def rewrite(self, url: str, page: Page) -> str:
        "Make a markdown link resolve in the built site: notebooks -> pages, nbdev's absolute doc links -> relative."
        if not url: return url
        if self.site_url and (url == self.site_url or url.startswith(self.site_url + '/')):
            rest = url[len(self.site_url):].lstrip('/') or 'index.html'
            return AUTO + rest
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or url.startswith(('#', '/')): return url
        path, frag = unquote(parts.path), parts.fragment
        target = posixpath.normpath(posixpath.join(page.dir, path))
        if target.startswith('..'): return url
        p = self.page_for(target)
        if p is None and target.endswith('.ipynb'): p = self.page_for(page_href(target))
        if p is not None: new = _rel(p.href, page.href)
        else:
            if (self.nbs/target).is_file(): self.assets.add(target)
            else: _warn(f'{page.rel}: link target {url!r} not found')
            new = _rel(target, page.href)
        return new + (f'#{frag}' if frag else '')

    def resolve_auto_links(self, page: Page, text: str) -> str:
        "Turn nbdev's doc links into relative links; drop anchors the target page does not have."
        def sub(m):
            target, frag = m.group(1), m.group(2)
            p = self.page_for(target)
            if p is None:
                _warn(f'{page.rel}: doc link to missing page {target}')
                return f'href="{self.site_url}/{target}{"#" + frag if frag else ""}"'
            if frag and frag not in p.ids: frag = None
            return f'href="{_rel(p.href, page.href)}{"#" + frag if frag else ""}"'
        return re.sub(r'href="' + re.escape(AUTO) + r'([^"#]*)(?:#([^"]*))?"', sub, text)

    # -- markdown -----------------------------------------------------------------------------------------
    def markdown(self, source: str, page: Page, attachments=None, inline=False) -> str:
        from nbconvert.filters.markdown_mistune import MarkdownWithMath
        res = MarkdownWithMath(renderer=_renderer(self, page, attachments)).render(preprocess_markdown(source))
        if inline: res = re.sub(r'^<p>(.*)</p>\s*$', r'\1', res.strip(), flags=re.DOTALL)
        return res

    # -- rendering ----------------------------------------------------------------------------------------
    def exporter(self):
        from nbconvert import HTMLExporter
        from traitlets.config import Config
        try: from jinja2 import pass_context
        except ImportError: from jinja2 import contextfilter as pass_context
        site = self

        class DocsExporter(HTMLExporter):
            @pass_context
            def markdown2html(self, context, source):
                cell = context.get('cell', {}) or {}
                return site.markdown(source, site.page, cell.get('attachments', {}))

            def from_notebook_node(self, nb, resources=None, **kw):
                # HTMLExporter's own version re-parses the page with BeautifulSoup for JupyterLab-only tweaks
                # (a third of the render time); register its two filters and render the template directly.
                from nbconvert.exporters.templateexporter import TemplateExporter
                from nbconvert.filters.highlight import Highlight2HTML
                from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
                resources = self._init_resources(resources)
                self.register_filter('highlight_code', Highlight2HTML(pygments_lexer='ipython3', parent=self))
                self.register_filter('filter_data_type', WidgetsDataTypeFilter(
                    notebook_metadata=self._nb_metadata, parent=self, resources=resources))
                return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

        c = Config()
        c.NbConvertBase.display_data_priority = ['text/html', 'text/markdown', 'image/svg+xml', 'image/png',
                                                 'image/jpeg', 'text/latex', 'text/plain']
        return DocsExporter(config=c, template_name=TEMPLATE_DIR.name,
                            extra_template_basedirs=[str(TEMPLATE_DIR.parent)],
                            exclude_input_prompt=True, exclude_output_prompt=True)

    def extract_figures(self, page: Page):
        "Write PNG outputs as files next to the page (`<page>_files/`); the template links them."
        stem = posixpath.splitext(page.href)[0]
        for ci, cell in enumerate(page.nb.cells):
            for oi, o in enumerate(cell.get('outputs', [])):
                data = o.get('data', {})
                if 'image/png' not in data: continue
                rel = f'{stem}_files/figure-{ci}-{oi}.png'
                dest = self.out/rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(base64.b64decode(_text(data['image/png'])))
                o.setdefault('metadata', {}).setdefault('filenames', {})['image/png'] = _rel(rel, page.href)
                o.metadata.setdefault('readme_png', rel)

    def render_body(self, page: Page, exporter):
        self.page = page
        page.ids, page.toc = set(), []
        page.title_html = self.markdown(page.title, page, inline=True) if page.title else page.href
        page.description_html = self.markdown(page.description, page, inline=True) if page.description else ''
        page.toc = []  # headings in the title block do not go in the table of contents
        body, _ = exporter.from_notebook_node(page.nb, resources={'metadata': {'name': Path(page.href).stem,
                                                                                'path': str(page.src.parent)}})
        parts = re.split(r'(<pre[\s>].*?</pre>)', body, flags=re.DOTALL)  # tidy blank lines, never inside <pre>
        page.body = ''.join(p if i % 2 else re.sub(r'\n\s*\n', '\n', p) for i, p in enumerate(parts)).strip() + '\n'
        self.page = None

    # -- sidebar ------------------------------------------------------------------------------------------
    def sidebar_tree(self):
        "Sidebar entries from nbs/sidebar.yml (sections and order); pages it does not list are appended."
        import yaml
        contents = None
        for name in ('sidebar.yml', '_quarto.yml'):
            f = self.nbs/name
            if f.exists() and contents is None:
                y = yaml.safe_load(f.read_text(encoding='utf-8')) or {}
                contents = ((y.get('website') or {}).get('sidebar') or {}).get('contents')
        used = set()

        def match(entry: str):
            entry = entry.lstrip('/').removeprefix('./')
            if any(ch in entry for ch in '*?['):
                return [p for p in self.pages if PurePosixPath(p.rel).match(entry) and p.href not in used]
            p = self.page_for(entry) or (self.page_for(page_href(entry)) if entry.endswith(('.ipynb', '.qmd', '.md'))
                                         else None)
            if p is None: _warn(f'sidebar.yml lists {entry!r}, which is not a notebook in nbs/')
            elif p.rel != entry and p.href != entry:
                _warn(f'sidebar.yml lists {entry!r}; using {p.rel} (same page name)')
            return [p] if p is not None and p.href not in used else []

        def walk(items):
            res = []
            for it in items or []:
                if isinstance(it, str): found = match(it)
                elif isinstance(it, dict) and 'auto' in it: found = match(it['auto'])
                elif isinstance(it, dict) and 'section' in it:
                    kids = walk(it.get('contents') if isinstance(it.get('contents'), list) else [it.get('contents')])
                    head = match(it['href']) if it.get('href') else []
                    if head: used.add(head[0].href)
                    if kids or head: res.append(('section', it['section'], head[0] if head else None, kids))
                    continue
                elif isinstance(it, dict) and 'href' in it:
                    found = match(it['href'])
                    if not found and urlsplit(it['href']).scheme: res.append(('link', it.get('text', it['href']), it['href']))
                elif isinstance(it, dict) and 'contents' in it:
                    res.extend(walk(it['contents']))
                    continue
                else: found = []
                for p in found:
                    used.add(p.href)
                    res.append(('page', p))
            return res
        tree = walk(contents if isinstance(contents, list) else [])
        rest = [('page', p) for p in self.pages if p.href not in used]
        index = [e for e in rest if e[1].href == 'index.html']
        return index + tree + [e for e in rest if e[1].href != 'index.html']

    def sidebar_order(self, tree):
        res = []
        for e in tree:
            if e[0] == 'page': res.append(e[1])
            elif e[0] == 'section':
                if e[2]: res.append(e[2])
                res.extend(self.sidebar_order(e[3]))
        return res

    def sidebar_html(self, tree, page: Page, depth=0) -> str:
        out = ['<ul class="sidebar-list">' if depth == 0 else '<ul class="sidebar-section-list">']
        for e in tree:
            if e[0] == 'page':
                p = e[1]
                cur = ' class="active" aria-current="page"' if p is page else ''
                out.append(f'<li><a href="{_rel(p.href, page.href)}"{cur}>{p.title_html}</a></li>')
            elif e[0] == 'link':
                out.append(f'<li><a href="{html.escape(e[2])}">{html.escape(str(e[1]))}</a></li>')
            else:
                _, name, head, kids = e
                title = (f'<a href="{_rel(head.href, page.href)}"{" class=active" if head is page else ""}>'
                         f'{html.escape(str(name))}</a>') if head else html.escape(str(name))
                out.append(f'<li class="sidebar-section"><div class="sidebar-section-title">{title}</div>'
                           f'{self.sidebar_html(kids, page, depth + 1)}</li>')
        out.append('</ul>')
        return '\n'.join(out)

    # -- whole pages --------------------------------------------------------------------------------------
    def write_pages(self):
        import jinja2
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=False,
                                 keep_trailing_newline=True)
        tpl = env.get_template('page.html.j2')
        tree = self.sidebar_tree()
        order = self.sidebar_order(tree)
        for i, page in enumerate(order):
            nav = lambda p: dict(href=_rel(p.href, page.href), title=p.title_text) if p else None
            text = tpl.render(site=self, page=page, root=page.root, sidebar=self.sidebar_html(tree, page),
                              body=page.body, toc=page.toc, prev=nav(order[i - 1] if i else None),
                              next=nav(order[i + 1] if i + 1 < len(order) else None))
            text = self.resolve_auto_links(page, text)
            dest = self.out/page.href
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding='utf-8', newline='\n')


def _renderer(site: Site, page: Page, attachments=None):
    from nbconvert.filters.markdown_mistune import IPythonRenderer

    class DocsRenderer(IPythonRenderer):
        "nbconvert's markdown renderer with MathML math, pandoc-style heading ids and site-aware links."
        def heading(self, text, level, **attrs):
            hid = page.new_id(text)
            if level in (2, 3): page.toc.append((level, hid, html.unescape(re.sub(r'<[^>]+>', '', text)).strip()))
            return (f'<h{level} id="{hid}" class="anchored">{text}'
                    f'<a class="anchor-link" href="#{hid}" aria-label="Link to this heading">¶</a></h{level}>\n')

        def link(self, text, url, title=None):
            return super().link(text, site.rewrite(url, page), title)

        def image(self, text, url, title=None):
            if not url.startswith(('attachment:', 'data:')): url = site.rewrite(url, page)
            return super().image(text, url, title)

        def _raw(self, raw):
            return re.sub(r'\b(href|src)="([^"]*)"', lambda m: f'{m.group(1)}="{site.rewrite(m.group(2), page)}"', raw)

        def block_html(self, raw): return super().block_html(self._raw(raw))

        def inline_html(self, raw): return super().inline_html(self._raw(raw))

        def inline_math(self, body): return tex_to_mathml(body, False, page.rel)

        def block_math(self, body): return tex_to_mathml(body, True, page.rel)

        def latex_environment(self, name, body):
            return tex_to_mathml(f'\\begin{{{name}}}{body}\\end{{{name}}}', True, page.rel)

    return DocsRenderer(escape=False, exclude_anchor_links=True, attachments=attachments or {})


# ---------------------------------------------------------------------------------------------------------
# README.md
# ---------------------------------------------------------------------------------------------------------

_re_md_link = re.compile(r'(!?)\[([^\]\n]*)\]\(([^)\s]+)((?:\s+"[^"]*")?)\)')


def readme_markdown(site: Site, page: Page, readme: Path) -> str:
    "GitHub markdown for the processed `page` (hidden cells gone, displayed outputs kept)."
    rdir = readme.parent.resolve()

    def link(m):
        bang, text, url, title = m.groups()
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or url.startswith(('#', '/')): return m.group(0)
        target = posixpath.normpath(posixpath.join(page.dir, unquote(parts.path)))
        p = site.page_for(target) or (site.page_for(page_href(target)) if target.endswith('.ipynb') else None)
        if p is not None and site.site_url: new = f'{site.site_url}/{p.href}'
        elif (site.nbs/target).exists(): new = Path(os.path.relpath(site.nbs/target, rdir)).as_posix()
        else: return m.group(0)
        return f'{bang}[{text}]({new}{"#" + parts.fragment if parts.fragment else ""}{title})'

    def md(s): return _re_md_link.sub(link, preprocess_markdown(s, for_html=False)).strip()

    def fence(s, lang=''): return f'``` {lang}\n{s.rstrip()}\n```'.replace('``` \n', '```\n')

    out = [f'# {page.title}'] if page.title else []
    if page.description: out.append(f'> {page.description}')
    for cell in page.nb.cells:
        if cell.cell_type == 'markdown': out.append(md(cell.source))
        elif cell.cell_type == 'raw' and cell.metadata.get('raw_mimetype', '').lower() in ('text/markdown', 'text/html'):
            out.append(cell.source.strip())
        elif cell.cell_type == 'code':
            if not cell.metadata.get('transient', {}).get('remove_source'): out.append(fence(cell.source, 'python'))
            for o in cell.outputs:
                if o.output_type == 'stream': out.append(fence(_text(o.text)))
                elif o.output_type == 'error': out.append(fence(re.sub(r'\x1b\[[0-9;]*m', '', '\n'.join(o.traceback))))
                else:
                    data = o.get('data', {})
                    if 'text/markdown' in data: out.append(md(data['text/markdown']))
                    elif 'image/png' in data and o.metadata.get('readme_png'):
                        rel = Path(os.path.relpath(site.out/o.metadata['readme_png'], rdir)).as_posix()
                        out.append(f'![]({rel})')
                    elif 'text/html' in data: out.append(data['text/html'].strip())
                    elif 'text/plain' in data: out.append(fence(data['text/plain']))
    text = '\n\n'.join(s for s in out if s.strip())
    return re.sub(r'\n{3,}', '\n\n', text) + '\n'


# ---------------------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------------------

def _prepare_out(out: Path):
    if out.exists():
        if out.is_file() or (any(out.iterdir()) and not (out/MARKER).exists()):
            raise SystemExit(f'{out} exists and is not a built docs site (no {MARKER}); refusing to overwrite it. '
                             'Pass an empty or new folder to --out.')
        shutil.rmtree(out)
    out.mkdir(parents=True)


def _index_page(site: Site):
    "A plain home page listing the chapters, used only when there is no nbs/index.ipynb."
    import nbformat
    items = '\n'.join(f'- [{p.title}]({p.rel})' for p in site.pages)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f'{site.cfg.get("description", "")}\n\n{items}')])
    return Page(src=site.nbs/'index.ipynb', rel='index.ipynb', href='index.html', title=site.title, nb=nb)


def build(out=None, readme=None, root: Path = ROOT, quiet=False) -> dict:
    """Build the site into `out` (default: the project's doc_path, `docs/`) and README.md into `readme`
    (default: `<root>/README.md`; `False` to skip). Returns {'pages': [...], 'seconds': {notebook: s}}."""
    t0 = time.perf_counter()
    WARNINGS.clear()
    root = Path(root).resolve()
    from nbdev.config import get_config
    cfg = get_config(path=root)
    out = Path(out).resolve() if out else Path(cfg.doc_path).resolve()
    readme = (root/'README.md') if readme is None else (Path(readme) if readme else None)
    _prepare_out(out)
    site = Site(root, out)
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))

    nbs = find_notebooks(site.nbs)
    site.pages = [Page(src=p, rel=p.relative_to(site.nbs).as_posix(), href=page_href(p.relative_to(site.nbs).as_posix()))
                  for p in nbs]
    seen = {}
    for p in site.pages:
        if p.href in seen: raise SystemExit(f'{p.rel} and {seen[p.href]} would both be written to {p.href}; rename one.')
        seen[p.href] = p.rel

    exporter, times = site.exporter(), {}
    for page in site.pages:
        t = time.perf_counter()
        page.nb, fm = process_notebook(page.src)
        page.title = str(fm.get('title', '') or Path(page.href).stem)
        page.description = str(fm.get('description', '') or '')
        apply_cell_options(page.nb)
        tp = time.perf_counter()
        site.extract_figures(page)
        site.render_body(page, exporter)
        times[page.rel] = (tp - t, time.perf_counter() - tp)
        log(f'  {page.rel:<32} -> {page.href:<24} process {tp - t:5.2f} s, render {time.perf_counter() - tp:5.2f} s')
    if site.page_for('index.html') is None:
        page = _index_page(site)
        site.pages.insert(0, page)
        apply_cell_options(page.nb)
        site.render_body(page, exporter)

    site.write_pages()
    for rel in sorted(site.assets):
        (out/rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site.nbs/rel, out/rel)
    shutil.copyfile(TEMPLATE_DIR/'site.css', out/'site.css')
    if site.has_styles: shutil.copyfile(site.nbs/'styles.css', out/'styles.css')
    (out/MARKER).write_text('')

    readme_nb = cfg.get('readme_nb', 'index.ipynb')
    rp = site.page_for(readme_nb)
    if readme is not None and rp is not None and rp.src.exists():
        Path(readme).write_text(readme_markdown(site, rp, Path(readme)), encoding='utf-8', newline='\n')
        log(f'  README written from {readme_nb} -> {readme}')
    elif readme is not None: log(f'  README not written: nbs/{readme_nb} does not exist')
    log(f'Built {len(site.pages)} pages into {out} in {time.perf_counter() - t0:.1f} s')
    return {'pages': [p.href for p in site.pages], 'seconds': times, 'out': out, 'readme': readme,
            'warnings': list(WARNINGS)}


def _tree(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): p for p in sorted(d.rglob('*')) if p.is_file()}


def check(out=None, root: Path = ROOT) -> list:
    "Build into a temporary folder and list the files that differ from `out` (docs/) and README.md."
    from nbdev.config import get_config
    root = Path(root).resolve()
    out = Path(out).resolve() if out else Path(get_config(path=root).doc_path).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        try: rel_out = out.relative_to(root)
        except ValueError: rel_out = Path(out.name)
        tout, tread = Path(tmp)/rel_out, Path(tmp)/'README.md'
        build(tout, tread, root=root, quiet=True)
        new, old = _tree(tout), (_tree(out) if out.exists() else {})
        diffs = sorted(f'{rel_out.as_posix()}/{k}' for k in set(new) | set(old)
                       if k not in new or k not in old or not filecmp.cmp(new[k], old[k], shallow=False))
        rd = root/'README.md'
        if tread.exists() and (not rd.exists() or rd.read_bytes() != tread.read_bytes()): diffs.append('README.md')
    return diffs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default=None, help='output folder for the site (default: doc_path from settings.ini, docs)')
    ap.add_argument('--readme', default=None, help='where to write README.md (default: the repository root)')
    ap.add_argument('--no-readme', action='store_true', help='do not write README.md')
    ap.add_argument('--check', action='store_true', help='build into a temp dir and exit 1 if --out or README.md are stale')
    a = ap.parse_args(argv)
    if a.check:
        diffs = check(a.out)
        if diffs:
            print('Docs are stale; run `python tools/build_docs.py`. Differing files:\n  ' + '\n  '.join(diffs))
            return 1
        print('Docs are up to date.')
        return 0
    build(a.out, False if a.no_readme else a.readme)
    return 0


if __name__ == '__main__':
    sys.exit(main())

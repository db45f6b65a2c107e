/* skein query node UI: graph, stores, cluster and status pages in one document. */
(function () {
  'use strict';

  /* ------------------------------------------------------------------ */
  /* Basics                                                             */
  /* ------------------------------------------------------------------ */

  const metaEl = document.querySelector('meta[name="skein-prefix"]');
  let PREFIX = (metaEl && metaEl.getAttribute('content')) || '';
  if (PREFIX.indexOf('{{') !== -1) PREFIX = '';
  PREFIX = PREFIX.replace(/\/+$/, '');

  const GRAPH_H = 300;
  const MAX_ROWS = 10000;
  const MAX_COMPLETIONS = 30;
  const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
  const GRID = '#e4e7eb';
  const AXIS = '#a4abb3';
  const AXIS_TEXT = '#4a525a';
  const PALETTE = [
    '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
    '#e377c2', '#17becf', '#bcbd22', '#393b79', '#f0027f', '#1b9e77',
    '#a6761d', '#666666', '#6a3d9a', '#66a61e', '#000080', '#fb9a99',
    '#008080', '#d95f02', '#b15928', '#7570b3', '#808000', '#c51b7d'
  ];
  const PAL_RGB = PALETTE.map(c => [1, 3, 5].map(i => parseInt(c.slice(i, i + 2), 16)));
  const colorOf = i => PALETTE[i % PALETTE.length];

  const FUNCS = ('abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min ' +
    'count_over_time day_of_month day_of_week day_of_year days_in_month delta deriv exp floor ' +
    'histogram_quantile holt_winters hour idelta increase irate label_join label_replace ' +
    'last_over_time ln log10 log2 max_over_time min_over_time minute month predict_linear ' +
    'present_over_time quantile_over_time rate resets round scalar sgn sort sort_desc sqrt ' +
    'stddev_over_time stdvar_over_time sum_over_time time timestamp vector year acos acosh asin ' +
    'asinh atan atanh cos cosh deg pi rad sin sinh tan tanh').split(' ');
  const AGGS = 'sum avg min max count group stddev stdvar topk bottomk quantile count_values'.split(' ');
  const KWS = 'by without on ignoring group_left group_right offset bool and or unless'.split(' ');
  const KW_SET = new Set(KWS);
  const STATIC_WORDS = [].concat(
    FUNCS.map(t => ({ text: t, kind: 'function' })),
    AGGS.map(t => ({ text: t, kind: 'aggregation' })),
    KWS.map(t => ({ text: t, kind: 'keyword' })));

  const RANGE_STEPS = [60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 1209600, 2419200];
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 1209600, 2419200, 7257600, 31536000];

  /** Builds an element: attrs may hold class, text, style, on<event> handlers and attributes. */
  function h(tag, attrs, kids) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v == null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k === 'style') e.style.cssText = v;
        else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden') e[k] = v;
        else if (k.slice(0, 2) === 'on' && typeof v === 'function') e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    add(e, kids);
    return e;
  }
  function add(e, kids) {
    if (kids == null || kids === false) return;
    if (Array.isArray(kids)) { for (const k of kids) add(e, k); return; }
    e.appendChild(typeof kids === 'object' ? kids : document.createTextNode(String(kids)));
  }
  function swatch(color) {
    const s = h('span', { class: 'swatch' });
    s.style.background = color;
    return s;
  }

  /* ------------------------------------------------------------------ */
  /* HTTP                                                               */
  /* ------------------------------------------------------------------ */

  class ApiError extends Error {
    constructor(msg, type) { super(msg); this.type = type || ''; }
  }

  function toParams(params) {
    const sp = new URLSearchParams();
    if (params) {
      for (const k of Object.keys(params)) {
        const v = params[k];
        if (v == null) continue;
        if (Array.isArray(v)) v.forEach(x => sp.append(k, String(x)));
        else sp.append(k, String(v));
      }
    }
    return sp;
  }

  /** Calls a JSON API under the prefix; resolves to the envelope, rejects with the server's message. */
  async function api(path, params, opts) {
    opts = opts || {};
    const init = { headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (opts.signal) init.signal = opts.signal;
    let url = PREFIX + path;
    const sp = toParams(params);
    if (opts.post) {
      init.method = 'POST';
      init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
      init.body = sp.toString();
    } else {
      const q = sp.toString();
      if (q) url += '?' + q;
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError('Network error: ' + ((e && e.message) || String(e)));
    }
    let text;
    try {
      text = await res.text();
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError('Network error while reading the response: ' + ((e && e.message) || String(e)));
    }
    let body = null;
    try { body = JSON.parse(text); } catch (_) { body = null; }
    if (body && typeof body === 'object' && body.status === 'error') {
      throw new ApiError(body.error != null ? String(body.error) : 'HTTP ' + res.status, body.errorType);
    }
    if (!res.ok) {
      const t = (text || '').trim();
      throw new ApiError('HTTP ' + res.status + (t ? ': ' + t.slice(0, 500) : (res.statusText ? ' ' + res.statusText : '')));
    }
    if (!body || typeof body !== 'object') throw new ApiError('Invalid response from server (not JSON)');
    return body;
  }

  const lookups = new Map();
  /** Per-page-load cache of completion lookups; a failed lookup yields an empty list. */
  function cachedList(key, path, params) {
    if (!lookups.has(key)) {
      lookups.set(key, api(path, params)
        .then(b => (Array.isArray(b.data) ? b.data.map(String) : []))
        .catch(() => []));
    }
    return lookups.get(key);
  }
  const metricNames = () => cachedList('m', '/api/v1/label/__name__/values');
  const labelNames = metric => cachedList('l|' + metric, '/api/v1/labels', metric ? { 'match[]': metric } : null);
  const labelValues = (name, metric) => cachedList('v|' + name + '|' + metric,
    '/api/v1/label/' + encodeURIComponent(name) + '/values', metric ? { 'match[]': metric } : null);

  let flagsPromise = null;
  function getFlags() {
    if (!flagsPromise) {
      flagsPromise = api('/api/v1/status/flags').then(b => b.data || {});
      flagsPromise.catch(() => { flagsPromise = null; });
    }
    return flagsPromise;
  }

  /* ------------------------------------------------------------------ */
  /* Formatting and parsing                                             */
  /* ------------------------------------------------------------------ */

  const pad = (n, w) => String(n).padStart(w || 2, '0');
  function fmtDate(ms, withSec) {
    const d = new Date(ms);
    if (isNaN(d.getTime())) return String(ms);
    let s = d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
    if (withSec !== false) s += ':' + pad(d.getUTCSeconds());
    return s;
  }
  function toMs(v) {
    if (v == null || v === '') return null;
    if (typeof v === 'number') return Math.abs(v) > 1e11 ? v : v * 1000;
    const t = Date.parse(v);
    return isNaN(t) ? null : t;
  }
  function durShort(s) {
    s = Math.floor(s);
    const part = (a, ua, b, ub) => a + ua + (b ? ' ' + b + ub : '');
    if (s < 60) return s + 's';
    if (s < 3600) return part(Math.floor(s / 60), 'm', s % 60, 's');
    if (s < 86400) return part(Math.floor(s / 3600), 'h', Math.floor(s % 3600 / 60), 'm');
    return part(Math.floor(s / 86400), 'd', Math.floor(s % 86400 / 3600), 'h');
  }
  function relTime(v) {
    const ms = toMs(v);
    if (ms == null) return 'never';
    const d = (Date.now() - ms) / 1000;
    if (d < -2) return 'in ' + durShort(-d);
    if (d < 1) return 'just now';
    return durShort(d) + ' ago';
  }
  function fmtBound(ms) {
    if (ms == null) return '?';
    const n = Number(ms);
    if (!isFinite(n) || Math.abs(n) > 1e15) return n < 0 ? '-inf' : '+inf';
    return fmtDate(n, false);
  }
  function fmtRange(min, max) {
    if (min == null && max == null) return 'unknown';
    return fmtBound(min) + ' \u2192 ' + fmtBound(max);
  }
  function fmtInt(n) {
    const x = Number(n);
    return isFinite(x) ? x.toLocaleString('en-US') : String(n);
  }
  function fmtSecs(s) {
    const x = Number(s);
    if (!isFinite(x)) return String(s);
    return x < 1 ? (x * 1000).toFixed(1) + ' ms' : x.toFixed(3) + ' s';
  }
  function fmtVal(v) {
    if (v === Infinity) return '+Inf';
    if (v === -Infinity) return '-Inf';
    if (v !== v) return 'NaN';
    return String(v);
  }
  function parseVal(v) {
    if (v === '+Inf' || v === 'Inf' || v === '+inf') return Infinity;
    if (v === '-Inf' || v === '-inf') return -Infinity;
    if (v == null || v === '' || v === 'NaN') return NaN;
    return Number(v);
  }
  function quoteStr(s) { return JSON.stringify(String(s)); }
  /** `name{a="b", c="d"}`; `{}` for an empty set. */
  function labelsStr(metric) {
    metric = metric || {};
    const name = metric.__name__ ? String(metric.__name__) : '';
    const parts = [];
    for (const k of Object.keys(metric)) if (k !== '__name__') parts.push(k + '=' + quoteStr(metric[k]));
    if (!parts.length) return name || '{}';
    return name + '{' + parts.join(', ') + '}';
  }
  function labelSetStr(set) {
    const parts = [];
    for (const k of Object.keys(set || {})) parts.push(k + '=' + quoteStr(set[k]));
    return '{' + parts.join(', ') + '}';
  }

  const DUR_UNITS = { y: 31536000, w: 604800, d: 86400, h: 3600, m: 60, s: 1, ms: 0.001 };
  /** Seconds for "1h30m", "90s", "2d" or a plain number; null when empty, NaN when invalid. */
  function parseDuration(s) {
    s = String(s == null ? '' : s).trim();
    if (!s) return null;
    if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s);
    const re = /(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)/y;
    let total = 0, pos = 0;
    while (pos < s.length) {
      re.lastIndex = pos;
      const m = re.exec(s);
      if (!m) return NaN;
      total += parseFloat(m[1]) * DUR_UNITS[m[2]];
      pos = re.lastIndex;
    }
    return total;
  }
  function formatDuration(sec) {
    if (!(sec > 0)) return '0s';
    let out = '', r = sec;
    for (const [u, v] of [['w', 604800], ['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
      if (r >= v) { const n = Math.floor(r / v); out += n + u; r -= n * v; }
    }
    if (r > 0.0005) out += Math.round(r * 1000) + 'ms';
    return out || '0s';
  }
  /** Unix seconds from "YYYY-MM-DD HH:MM:SS" (UTC) or a number; null when empty, NaN when invalid. */
  function parseTimeInput(s) {
    s = String(s == null ? '' : s).trim();
    if (!s) return null;
    if (/^-?\d+(\.\d+)?$/.test(s)) return parseFloat(s);
    const m = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?\s*(?:Z|UTC)?$/i.exec(s);
    if (!m) return NaN;
    const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
    return ms / 1000 + (m[7] ? parseFloat('0.' + m[7]) : 0);
  }
  const autoStep = range => Math.max(Math.floor(range / 250), 1);
  const fmtNum = x => String(Math.round(x * 1000) / 1000);

  /**
   * For messages without a position that name an unclosed or unexpected
   * bracket: the offset of the bracket left open (or closed too often),
   * outside strings; -1 when there is none.
   */
  function unbalancedAt(msg, expr) {
    const kinds = [['(', ')', /parenthes/], ['{', '}', /brace/], ['[', ']', /bracket/]];
    const kind = kinds.find(k => k[2].test(msg));
    if (!kind) return -1;
    const open = [];
    let quote = null;
    for (let i = 0; i < expr.length; i++) {
      const c = expr[i];
      if (quote) {
        if (c === '\\') i++;
        else if (c === quote) quote = null;
        continue;
      }
      if (c === '"' || c === "'" || c === '`') quote = c;
      else if (c === kind[0]) open.push(i);
      else if (c === kind[1] && open.pop() === undefined) return i;
    }
    return open.length ? open[open.length - 1] : -1;
  }

  /** Finds the position of a parse error in the expression, if the message names one. */
  function parseErrPos(msg, expr) {
    let m, line, col;
    if ((m = /(\d+):(\d+): parse error/.exec(msg))) { line = +m[1]; col = +m[2]; }
    else if ((m = /parse error at line (\d+), char (\d+)/.exec(msg))) { line = +m[1]; col = +m[2]; }
    else if ((m = /parse error at char (\d+)/.exec(msg))) {
      const ls = expr.slice(0, Math.max(0, +m[1] - 1)).split('\n');
      line = ls.length; col = ls[ls.length - 1].length + 1;
    } else {
      const at = unbalancedAt(msg, expr);
      if (at < 0) return null;
      const ls = expr.slice(0, at).split('\n');
      line = ls.length; col = ls[ls.length - 1].length + 1;
    }
    const lines = expr.split('\n');
    if (line < 1 || line > lines.length) return null;
    const text = lines[line - 1];
    col = Math.max(1, Math.min(col, text.length + 1));
    return { line, col, text };
  }

  /* ------------------------------------------------------------------ */
  /* Chart helpers                                                      */
  /* ------------------------------------------------------------------ */

  function niceNum(x) {
    if (!(x > 0) || !isFinite(x)) return 1;
    const e = Math.floor(Math.log10(x)), p = Math.pow(10, e), f = x / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }
  function niceTicks(lo, hi, n) {
    const step = niceNum((hi - lo) / n);
    const min = Math.floor(lo / step) * step;
    let max = Math.ceil(hi / step) * step;
    if (!(max > min)) max = min + step;
    const ticks = [];
    for (let k = 0; k < 200; k++) {
      const v = min + k * step;
      if (v > max + step * 1e-6) break;
      ticks.push(v);
    }
    return { min, max, step, ticks };
  }
  const SI = [[1e15, 'P'], [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k'], [1, ''], [1e-3, 'm'], [1e-6, '\u00b5'], [1e-9, 'n']];
  /** Axis label with a unit suffix chosen from the largest tick. */
  function fmtTick(v, ref, step) {
    if (Math.abs(v) < step * 1e-9) return '0';
    let mul = 1e-9, suf = 'n';
    for (const [m, s] of SI) if (Math.abs(ref) >= m) { mul = m; suf = s; break; }
    const dec = Math.max(0, Math.min(9, Math.ceil(-Math.log10(step / mul) - 1e-9)));
    return (v / mul).toFixed(dec) + suf;
  }
  function timeTicks(start, end, width) {
    const span = end - start;
    const target = Math.max(2, Math.min(10, Math.floor(width / 110)));
    let iv = TIME_STEPS[TIME_STEPS.length - 1];
    for (const s of TIME_STEPS) if (span / s <= target) { iv = s; break; }
    const ticks = [];
    for (let t = Math.ceil(start / iv) * iv; t <= end && ticks.length < 100; t += iv) ticks.push(t);
    return { iv, ticks };
  }
  function tickLabel(t, iv, span) {
    const d = new Date(t * 1000);
    const md = pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate());
    const hm = pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
    if (iv >= 86400) return span > 300 * 86400 ? d.getUTCFullYear() + '-' + md : md;
    if (span > 86400) return md + ' ' + hm;
    return iv < 60 ? hm + ':' + pad(d.getUTCSeconds()) : hm;
  }
  function nearestIdx(ts, t) {
    let lo = 0, hi = ts.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (ts[mid] < t) lo = mid; else hi = mid;
    }
    return Math.abs(ts[hi] - t) < Math.abs(ts[lo] - t) ? hi : lo;
  }
  /** Cumulative values per step slot for the visible series, in series order. */
  function stackValues(g, vis) {
    const n = Math.max(1, Math.min(5e6, Math.round((g.end - g.start) / g.step) + 1));
    const base = new Float64Array(n);
    return vis.map(i => {
      const s = g.series[i], out = new Float64Array(s.vs.length);
      for (let j = 0; j < out.length; j++) {
        const v = s.vs[j];
        if (!isFinite(v)) { out[j] = NaN; continue; }
        const k = Math.round((s.ts[j] - g.start) / g.step);
        if (k >= 0 && k < n) { base[k] += v; out[j] = base[k]; } else out[j] = v;
      }
      return out;
    });
  }
  function buildGraphData(rt, res, meta) {
    const series = [];
    const push = (metric, pts, name) => {
      const n = pts.length, ts = new Float64Array(n), vs = new Float64Array(n);
      for (let i = 0; i < n; i++) { ts[i] = +pts[i][0]; vs[i] = parseVal(pts[i][1]); }
      series.push({ metric: metric || {}, name: name || labelsStr(metric), ts, vs });
    };
    if (rt === 'matrix' && Array.isArray(res)) res.forEach(s => push(s.metric, s.values || []));
    else if (rt === 'vector' && Array.isArray(res)) res.forEach(s => push(s.metric, s.value ? [s.value] : []));
    else if (rt === 'scalar' && Array.isArray(res)) push({}, [res], 'scalar');
    return { series, start: meta.start, end: meta.end, step: meta.step };
  }

  /* ------------------------------------------------------------------ */
  /* Expression completion                                              */
  /* ------------------------------------------------------------------ */

  /** Works out what may be completed at the end of `text` (the expression up to the cursor). */
  function compContext(text) {
    let brace = -1, bracket = 0, quote = '', qStart = -1;
    const parens = [];
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quote) {
        if (c === '\\' && quote !== '`') i++;
        else if (c === quote) quote = '';
        continue;
      }
      if (c === '"' || c === "'" || c === '`') { quote = c; qStart = i; }
      else if (c === '#') { const nl = text.indexOf('\n', i); if (nl < 0) return null; i = nl; }
      else if (c === '{') brace = i;
      else if (c === '}') brace = -1;
      else if (c === '[') bracket++;
      else if (c === ']') { if (bracket) bracket--; }
      else if (c === '(') parens.push(i);
      else if (c === ')') parens.pop();
    }
    const metricBefore = i => {
      const m = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(text.slice(0, i));
      return m && !KW_SET.has(m[1]) ? m[1] : '';
    };
    if (quote) {
      if (brace < 0 || qStart < brace) return null;
      const m = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*$/.exec(text.slice(brace + 1, qStart));
      if (!m) return null;
      return { kind: 'value', label: m[1], metric: metricBefore(brace), from: qStart + 1, prefix: text.slice(qStart + 1), quote };
    }
    if (bracket) return null;
    const word = /[a-zA-Z_][a-zA-Z0-9_]*$/.exec(text);
    const prefix = word ? word[0] : '';
    const from = text.length - prefix.length;
    const namePos = s => { s = s.replace(/\s+$/, ''); return s === '' || s[s.length - 1] === ','; };
    if (brace >= 0) {
      if (!namePos(text.slice(brace + 1, from))) return null;
      return { kind: 'label', metric: metricBefore(brace), prefix, from };
    }
    if (parens.length) {
      const p = parens[parens.length - 1];
      if (/\b(by|without|on|ignoring|group_left|group_right)\s*$/i.test(text.slice(0, p))) {
        if (!namePos(text.slice(p + 1, from))) return null;
        return { kind: 'label', metric: '', prefix, from };
      }
    }
    const m = /[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(text);
    if (!m) return null;
    const pc = text[m.index - 1];
    if (pc && /[0-9.]/.test(pc)) return null;
    return { kind: 'ident', prefix: m[0], from: m.index };
  }
  function candidates(ctx) {
    if (ctx.kind === 'ident') {
      return metricNames().then(ms => STATIC_WORDS.concat(ms.map(t => ({ text: t, kind: 'metric' }))));
    }
    if (ctx.kind === 'label') return labelNames(ctx.metric).then(ns => ns.map(t => ({ text: t, kind: 'label' })));
    return labelValues(ctx.label, ctx.metric).then(vs => vs.map(t => ({ text: t, kind: 'value' })));
  }
  /** Prefix matches first, then substring matches; each alphabetical; at most MAX_COMPLETIONS. */
  function filterCands(cands, prefix) {
    const p = prefix.toLowerCase(), pre = [], sub = [], seen = new Set();
    for (const c of cands) {
      if (seen.has(c.text)) continue;
      const t = c.text.toLowerCase();
      if (!p || t.startsWith(p)) { pre.push(c); seen.add(c.text); }
      else if (t.includes(p)) { sub.push(c); seen.add(c.text); }
    }
    const cmp = (a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0);
    pre.sort(cmp); sub.sort(cmp);
    return pre.concat(sub).slice(0, MAX_COMPLETIONS);
  }
  function escapeFor(s, quote) {
    if (quote === '`') return s;
    return s.replace(/\\/g, '\\\\').split(quote).join('\\' + quote).replace(/\n/g, '\\n');
  }

  /* ------------------------------------------------------------------ */
  /* Router                                                             */
  /* ------------------------------------------------------------------ */

  const PAGES = {
    graph: ['Graph', p => new GraphPage(p)],
    stores: ['Stores', storesPage],
    cluster: ['Cluster', clusterPage],
    status: ['Status', statusPage]
  };
  let token = 0;
  let cleanups = [];
  let lastGraphSearch = '';
  let currentGraph = null;

  function pageFromPath() {
    let p = location.pathname;
    if (PREFIX && p.indexOf(PREFIX) === 0) p = p.slice(PREFIX.length);
    const seg = p.replace(/^\/+/, '').split('/')[0];
    return Object.prototype.hasOwnProperty.call(PAGES, seg) ? seg : 'graph';
  }
  function markLoaded(tk) { if (tk === token) document.body.dataset.loaded = '1'; }

  function render() {
    const old = cleanups;
    cleanups = [];
    for (const f of old) { try { f(); } catch (_) { /* already gone */ } }
    const tk = ++token;
    const page = pageFromPath();
    document.body.dataset.page = page;
    delete document.body.dataset.loaded;
    document.title = PAGES[page][0] + ' \u00b7 skein';
    for (const a of document.querySelectorAll('a[data-nav]')) {
      a.setAttribute('href', PREFIX + '/' + a.getAttribute('data-nav'));
      if (!a.classList.contains('navlink')) continue;
      const on = a.getAttribute('data-nav') === page;
      a.classList.toggle('active', on);
      if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    let main = document.getElementById('app');
    if (!main) { main = h('main', { id: 'app' }); document.body.appendChild(main); }
    main.textContent = '';
    PAGES[page][1]({ main, tk });
  }
  function navigate(page) {
    if (pageFromPath() === 'graph' && document.body.dataset.page === 'graph') lastGraphSearch = location.search;
    history.pushState(null, '', PREFIX + '/' + page + (page === 'graph' ? lastGraphSearch : ''));
    render();
    window.scrollTo(0, 0);
  }

  /* ------------------------------------------------------------------ */
  /* Graph page                                                         */
  /* ------------------------------------------------------------------ */

  function panelsFromURL(search) {
    const byIdx = new Map();
    for (const [k, v] of new URLSearchParams(search)) {
      const m = /^g(\d+)\.(.+)$/.exec(k);
      if (!m) continue;
      const i = +m[1];
      if (!byIdx.has(i)) byIdx.set(i, {});
      byIdx.get(i)[m[2]] = v;
    }
    return Array.from(byIdx.keys()).sort((a, b) => a - b).map(i => byIdx.get(i));
  }

  class GraphPage {
    constructor(p) {
      this.tk = p.tk;
      this.panels = [];
      this.defaults = { dedup: true, partial: false, replicas: [] };
      this.loading = h('div', { class: 'muted', text: 'Loading\u2026' });
      this.list = h('div', { class: 'panels' });
      this.addBtn = h('button', {
        type: 'button', class: 'btn', 'data-role': 'add-panel', text: '+ Add panel', disabled: true,
        onclick: () => { const pn = this.addPanel({}); pn.$.expr.focus(); this.updateURL(); }
      });
      p.main.append(this.loading, this.list, h('div', { class: 'add-row' }, this.addBtn));
      currentGraph = this;
      cleanups.push(() => {
        this.panels.forEach(pn => pn.destroy());
        if (currentGraph === this) currentGraph = null;
      });
      this.init();
    }
    async init() {
      let flags = null;
      try { flags = await getFlags(); } catch (_) { flags = null; }
      if (this.tk !== token) return;
      if (flags) {
        const rl = flags['query.replica-label'];
        this.defaults.replicas = rl ? String(rl).split(',').map(s => s.trim()).filter(Boolean) : [];
        this.defaults.partial = String(flags['query.partial-response'] || '').toLowerCase() === 'true';
      }
      this.loading.remove();
      const specs = panelsFromURL(location.search);
      if (!specs.length) specs.push({});
      specs.forEach(s => this.addPanel(s));
      this.addBtn.disabled = false;
      const runs = this.panels.filter(pn => pn.$.expr.value.trim()).map(pn => pn.run());
      await Promise.allSettled(runs);
      markLoaded(this.tk);
    }
    addPanel(spec) {
      const pn = new Panel(this, spec);
      this.panels.push(pn);
      this.list.appendChild(pn.root);
      this.renumber();
      pn.autosize();
      pn.updateStepHint();
      return pn;
    }
    removePanel(pn) {
      const i = this.panels.indexOf(pn);
      if (i < 0) return;
      pn.destroy();
      this.panels.splice(i, 1);
      pn.root.remove();
      this.renumber();
      this.updateURL();
    }
    renumber() { this.panels.forEach((pn, i) => { pn.root.dataset.panel = String(i); }); }
    updateURL() {
      if (this.tk !== token) return;
      const sp = new URLSearchParams();
      this.panels.forEach((pn, i) => pn.writeParams(sp, i));
      const qs = sp.toString();
      lastGraphSearch = qs ? '?' + qs : '';
      history.replaceState(history.state, '', PREFIX + '/graph' + lastGraphSearch);
    }
  }

  class Panel {
    constructor(gp, spec) {
      this.gp = gp;
      this.tab = (spec.tab === 'table' || spec.tab === '1') ? 'table' : 'graph';
      this.seq = 0;
      this.ctrl = null;
      this.graph = null;
      this.layout = null;
      this.only = -1;
      this.ctx = null;
      this.lastW = 0;
      this.lastDpr = 0;
      this.hoverEv = null;
      this.hoverRaf = 0;
      this.drawRaf = 0;
      this.comp = { items: [], sel: -1, ctx: null, pos: 0, seq: 0 };
      const truthy = v => v === '1' || v === 'true';
      const dedup = spec.dedup != null ? truthy(spec.dedup) : gp.defaults.dedup;
      const partial = spec.partial_response != null ? truthy(spec.partial_response) : gp.defaults.partial;
      const replicas = gp.defaults.replicas;
      const $ = this.$ = {};

      $.expr = h('textarea', {
        class: 'expr', 'data-role': 'expr', rows: 1, spellcheck: 'false', autocomplete: 'off',
        autocapitalize: 'off', 'aria-label': 'Expression',
        placeholder: 'Expression (Enter to execute, Shift+Enter for a new line)'
      });
      $.expr.value = spec.expr || '';
      $.comps = h('ul', { class: 'completions', 'data-role': 'completions', role: 'listbox', hidden: true });
      $.exec = h('button', { type: 'button', class: 'btn primary', 'data-role': 'execute', text: 'Execute' });
      $.remove = h('button', {
        type: 'button', class: 'btn icon', 'data-role': 'remove-panel', title: 'Remove panel',
        'aria-label': 'Remove panel', text: '\u00d7'
      });
      $.error = h('div', { class: 'err-box', 'data-role': 'error', role: 'alert', hidden: true });
      $.caret = h('pre', { class: 'caret', hidden: true });
      $.tabG = h('button', { type: 'button', class: 'tab', role: 'tab', 'data-role': 'tab-graph', text: 'Graph' });
      $.tabT = h('button', { type: 'button', class: 'tab', role: 'tab', 'data-role': 'tab-table', text: 'Table' });
      $.dedup = h('input', { type: 'checkbox', 'data-role': 'dedup', checked: dedup });
      $.partial = h('input', { type: 'checkbox', 'data-role': 'partial', checked: partial });
      $.rMinus = h('button', { type: 'button', class: 'btn icon', title: 'Shorter range', 'aria-label': 'Shorter range', text: '\u2212' });
      $.range = h('input', { type: 'text', class: 'in-range', 'data-role': 'range', value: spec.range_input || '1h', 'aria-label': 'Range' });
      $.rPlus = h('button', { type: 'button', class: 'btn icon', title: 'Longer range', 'aria-label': 'Longer range', text: '+' });
      $.end = h('input', {
        type: 'text', class: 'in-time', 'data-role': 'end', value: spec.end_input || '',
        placeholder: 'now', title: 'End time: YYYY-MM-DD HH:MM:SS (UTC) or unix seconds; empty = now', 'aria-label': 'End time'
      });
      $.step = h('input', {
        type: 'text', class: 'in-step', 'data-role': 'step', value: spec.step_input || '',
        title: 'Resolution (step) as a duration or seconds; empty = automatic', 'aria-label': 'Resolution'
      });
      $.stacked = h('input', { type: 'checkbox', 'data-role': 'stacked', checked: truthy(spec.stacked) });
      $.moment = h('input', {
        type: 'text', class: 'in-time', 'data-role': 'moment', value: spec.moment_input || '',
        placeholder: 'now', title: 'Evaluation time: YYYY-MM-DD HH:MM:SS (UTC) or unix seconds; empty = now',
        'aria-label': 'Evaluation time'
      });
      $.warnings = h('ul', { class: 'warnings', 'data-role': 'warnings', hidden: true });
      $.stats = h('div', { class: 'stats', 'data-role': 'stats' });
      $.canvas = h('canvas', { class: 'graph', 'data-role': 'graph' });
      $.overlay = h('canvas', { class: 'overlay', 'aria-hidden': 'true' });
      $.tip = h('div', { class: 'tooltip', hidden: true });
      $.cwrap = h('div', { class: 'cwrap', hidden: true }, [$.canvas, $.overlay, $.tip]);
      $.gnote = h('div', { class: 'note', hidden: true });
      $.legend = h('div', { class: 'legend', 'data-role': 'legend' });
      $.gArea = h('div', { class: 'g-area' }, [$.gnote, $.cwrap, $.legend]);
      $.tnote = h('div', { class: 'note', hidden: true });
      $.table = h('table', { class: 'data result', 'data-role': 'table' });
      $.tArea = h('div', { class: 't-area' }, [$.tnote, h('div', { class: 'table-scroll' }, $.table)]);
      $.gCtl = h('div', { class: 'ctl-group' }, [
        h('span', { class: 'ctl-label', text: 'Range' }),
        h('span', { class: 'joined' }, [$.rMinus, $.range, $.rPlus]),
        h('label', { class: 'ctl-label' }, ['End ', $.end]),
        h('label', { class: 'ctl-label' }, ['Res. ', $.step]),
        h('label', { class: 'check' }, [$.stacked, ' stacked'])
      ]);
      $.tCtl = h('div', { class: 'ctl-group' }, [h('label', { class: 'ctl-label' }, ['Evaluation time ', $.moment])]);
      const opts = h('div', { class: 'ctl-group opts' }, [
        h('label', { class: 'check', title: 'Merge series that differ only in replica labels' }, [$.dedup, ' Deduplication']),
        h('span', { class: 'replicas', text: replicas.length ? 'replica labels: ' + replicas.join(', ') : 'no replica labels configured' }),
        h('label', { class: 'check', title: 'Answer with the stores that responded when some fail' }, [$.partial, ' Partial response'])
      ]);
      this.root = h('div', { class: 'panel', 'data-panel': 0, 'data-state': 'idle', 'data-series': 0, 'data-lines': 0, 'data-warnings': 0 }, [
        h('div', { class: 'panel-top' }, [h('div', { class: 'editor' }, [$.expr, $.comps]), $.exec, $.remove]),
        $.error, $.caret,
        h('div', { class: 'controls' }, [h('div', { class: 'tabs', role: 'tablist' }, [$.tabG, $.tabT]), $.gCtl, $.tCtl, opts]),
        h('div', { class: 'output' }, [$.warnings, $.stats, $.gArea, $.tArea])
      ]);
      this.wire();
      this.updateTabUI();
    }

    wire() {
      const $ = this.$;
      const rerun = () => { if ($.expr.value.trim()) this.run(); else this.gp.updateURL(); };
      $.exec.addEventListener('click', () => this.run());
      $.remove.addEventListener('click', () => this.gp.removePanel(this));
      $.tabG.addEventListener('click', () => this.setTab('graph'));
      $.tabT.addEventListener('click', () => this.setTab('table'));
      $.dedup.addEventListener('change', rerun);
      $.partial.addEventListener('change', rerun);
      $.range.addEventListener('input', () => this.updateStepHint());
      $.range.addEventListener('change', rerun);
      $.end.addEventListener('change', rerun);
      $.step.addEventListener('change', rerun);
      $.moment.addEventListener('change', rerun);
      $.rMinus.addEventListener('click', () => this.stepRange(-1));
      $.rPlus.addEventListener('click', () => this.stepRange(1));
      $.stacked.addEventListener('change', () => { this.draw(); this.gp.updateURL(); });
      $.expr.addEventListener('input', () => { this.autosize(); this.updateComp(); });
      $.expr.addEventListener('keydown', e => this.onKey(e));
      $.expr.addEventListener('blur', () => this.closeComp());
      $.expr.addEventListener('click', () => this.closeComp());
      $.expr.addEventListener('focus', () => { metricNames(); });
      $.comps.addEventListener('mousedown', e => {
        e.preventDefault();
        const li = e.target.closest ? e.target.closest('li') : null;
        if (!li) return;
        const i = Array.prototype.indexOf.call($.comps.children, li);
        if (i >= 0) this.acceptComp(i);
      });
      $.legend.addEventListener('click', e => {
        const it = e.target.closest ? e.target.closest('[data-series-index]') : null;
        if (!it) return;
        const i = +it.getAttribute('data-series-index');
        this.only = this.only === i ? -1 : i;
        this.updateLegend();
        this.draw();
      });
      $.cwrap.addEventListener('mousemove', e => {
        this.hoverEv = e;
        if (!this.hoverRaf) this.hoverRaf = requestAnimationFrame(() => { this.hoverRaf = 0; this.doHover(); });
      });
      $.cwrap.addEventListener('mouseleave', () => { this.hoverEv = null; this.hideHover(); });
      if (window.ResizeObserver) {
        this.ro = new ResizeObserver(() => {
          if (this.drawRaf) cancelAnimationFrame(this.drawRaf);
          this.drawRaf = requestAnimationFrame(() => { this.drawRaf = 0; this.maybeRedraw(); });
        });
        this.ro.observe($.gArea);
      }
    }

    destroy() {
      this.seq++;
      if (this.ctrl) { this.ctrl.abort(); this.ctrl = null; }
      if (this.ro) this.ro.disconnect();
      if (this.hoverRaf) cancelAnimationFrame(this.hoverRaf);
      if (this.drawRaf) cancelAnimationFrame(this.drawRaf);
      this.comp.seq++;
    }

    writeParams(sp, i) {
      const $ = this.$, p = 'g' + i + '.';
      sp.set(p + 'expr', $.expr.value);
      sp.set(p + 'tab', this.tab);
      sp.set(p + 'range_input', $.range.value);
      sp.set(p + 'end_input', $.end.value);
      sp.set(p + 'step_input', $.step.value);
      sp.set(p + 'moment_input', $.moment.value);
      sp.set(p + 'stacked', $.stacked.checked ? '1' : '0');
      sp.set(p + 'dedup', $.dedup.checked ? '1' : '0');
      sp.set(p + 'partial_response', $.partial.checked ? '1' : '0');
    }

    setState(s) { this.root.dataset.state = s; }

    autosize() {
      const ta = this.$.expr;
      ta.style.height = 'auto';
      ta.style.height = (ta.scrollHeight + 2) + 'px';
    }

    updateStepHint() {
      const r = parseDuration(this.$.range.value || '1h');
      this.$.step.placeholder = r > 0 ? 'res. ' + formatDuration(autoStep(r)) + ' (auto)' : 'auto';
    }

    stepRange(dir) {
      let cur = parseDuration(this.$.range.value);
      if (!(cur > 0)) cur = 3600;
      let next;
      if (dir < 0) {
        next = RANGE_STEPS[0];
        for (const s of RANGE_STEPS) if (s < cur) next = s;
      } else {
        next = RANGE_STEPS[RANGE_STEPS.length - 1];
        for (let i = RANGE_STEPS.length - 1; i >= 0; i--) if (RANGE_STEPS[i] > cur) next = RANGE_STEPS[i];
      }
      this.$.range.value = formatDuration(next);
      this.updateStepHint();
      if (this.$.expr.value.trim()) this.run(); else this.gp.updateURL();
    }

    updateTabUI() {
      const $ = this.$, g = this.tab === 'graph';
      $.tabG.classList.toggle('active', g);
      $.tabT.classList.toggle('active', !g);
      $.tabG.setAttribute('aria-selected', String(g));
      $.tabT.setAttribute('aria-selected', String(!g));
      $.gCtl.hidden = !g; $.gArea.hidden = !g;
      $.tCtl.hidden = g; $.tArea.hidden = g;
    }

    setTab(tab) {
      if (this.tab === tab) return;
      this.tab = tab;
      this.updateTabUI();
      this.clearOutput();
      this.run();
    }

    clearError() {
      const $ = this.$;
      $.error.textContent = ''; $.error.hidden = true;
      $.caret.textContent = ''; $.caret.hidden = true;
    }

    clearOutput() {
      const $ = this.$, d = this.root.dataset;
      this.graph = null; this.layout = null; this.only = -1;
      this.hideHover();
      $.cwrap.hidden = true; $.legend.textContent = ''; $.gnote.hidden = true;
      $.table.textContent = ''; $.tnote.hidden = true;
      $.warnings.textContent = ''; $.warnings.hidden = true;
      $.stats.textContent = '';
      this.clearError();
      d.series = '0'; d.lines = '0'; d.warnings = '0';
    }

    showError(msg, expr) {
      const $ = this.$;
      this.clearOutput();
      $.error.textContent = msg;
      $.error.hidden = false;
      const pos = parseErrPos(msg, expr);
      if (pos) {
        const lead = pos.text.slice(0, pos.col - 1).replace(/[^\t]/g, ' ');
        $.caret.textContent = pos.text + '\n' + lead + '^';
        $.caret.hidden = false;
      }
      this.setState('error');
    }

    async run() {
      const $ = this.$, expr = $.expr.value;
      this.closeComp();
      if (this.ctrl) { this.ctrl.abort(); this.ctrl = null; }
      const seq = ++this.seq;
      this.gp.updateURL();
      if (!expr.trim()) { this.clearOutput(); this.setState('idle'); return; }
      const common = {
        query: expr,
        dedup: $.dedup.checked ? 'true' : 'false',
        partial_response: $.partial.checked ? 'true' : 'false',
        stats: 'all'
      };
      let path, meta = null;
      if (this.tab === 'graph') {
        const range = parseDuration($.range.value || '1h');
        if (!(range > 0)) return this.showError('Invalid range "' + $.range.value + '": use a duration like 30m, 1h or 2d.', expr);
        let end = parseTimeInput($.end.value);
        if (Number.isNaN(end)) return this.showError('Invalid end time "' + $.end.value + '": use YYYY-MM-DD HH:MM:SS (UTC) or unix seconds.', expr);
        if (end == null) end = Date.now() / 1000;
        let step = parseDuration($.step.value);
        if (step != null && !(step > 0)) return this.showError('Invalid resolution "' + $.step.value + '": use a duration like 15s or a number of seconds.', expr);
        if (step == null) step = autoStep(range);
        const start = end - range;
        path = '/api/v1/query_range';
        Object.assign(common, { start: fmtNum(start), end: fmtNum(end), step: fmtNum(step) });
        meta = { start, end, step };
      } else {
        let t = parseTimeInput($.moment.value);
        if (Number.isNaN(t)) return this.showError('Invalid evaluation time "' + $.moment.value + '": use YYYY-MM-DD HH:MM:SS (UTC) or unix seconds.', expr);
        if (t == null) t = Date.now() / 1000;
        path = '/api/v1/query';
        common.time = fmtNum(t);
      }
      const ctrl = this.ctrl = new AbortController();
      this.setState('loading');
      const t0 = performance.now();
      try {
        const body = await api(path, common, { post: true, signal: ctrl.signal });
        if (seq !== this.seq) return;
        this.ctrl = null;
        this.show(body, meta, performance.now() - t0);
      } catch (e) {
        if (seq !== this.seq || (e && e.name === 'AbortError')) return;
        this.ctrl = null;
        this.showError((e && e.message) || String(e), expr);
      }
    }

    show(body, meta, loadMs) {
      const $ = this.$, d = this.root.dataset;
      const data = body.data || {};
      const rt = data.resultType, res = data.result;
      this.clearOutput();
      const ws = Array.isArray(body.warnings) ? body.warnings : [];
      for (const w of ws) $.warnings.appendChild(h('li', { text: String(w) }));
      $.warnings.hidden = !ws.length;
      d.warnings = String(ws.length);
      let n = 0;
      if (rt === 'vector' || rt === 'matrix') n = Array.isArray(res) ? res.length : 0;
      else if (rt === 'scalar' || rt === 'string') n = 1;
      d.series = String(n);
      this.showStats(loadMs, n, data.stats);
      if (this.tab === 'graph') {
        if (rt === 'string') {
          $.gnote.textContent = 'A string result cannot be graphed; use the Table tab.';
          $.gnote.hidden = false;
        } else {
          this.graph = buildGraphData(rt, res, meta);
          this.only = -1;
          $.cwrap.hidden = false;
          this.renderLegend();
          this.draw();
        }
      } else {
        this.renderTable(rt, res);
        d.lines = '0';
      }
      this.setState('done');
    }

    showStats(loadMs, n, st) {
      const parts = ['Load time: ' + Math.round(loadMs) + ' ms', 'Result series: ' + fmtInt(n)];
      if (st && typeof st === 'object') {
        const tm = st.timings && st.timings.execTotalTime;
        if (tm != null) parts.push('Server time: ' + fmtSecs(tm));
        const smp = st.samples && st.samples.totalQueryableSamples;
        if (smp != null) parts.push('Samples: ' + fmtInt(smp));
        const sk = st.skein || {};
        if (sk.storesAsked != null) parts.push('Stores asked: ' + fmtInt(sk.storesAsked));
        if (sk.groupsPruned != null) parts.push('Groups pruned: ' + fmtInt(sk.groupsPruned));
        if (sk.hedgesSent != null || sk.hedgesWon != null) {
          parts.push('Hedges sent/won: ' + fmtInt(sk.hedgesSent || 0) + '/' + fmtInt(sk.hedgesWon || 0));
        }
        if (sk.seriesFetched != null) parts.push('Series fetched: ' + fmtInt(sk.seriesFetched));
        if (sk.chunksFetched != null) parts.push('Chunks fetched: ' + fmtInt(sk.chunksFetched));
        if (sk.fallbacks != null) parts.push('Fallbacks: ' + fmtInt(sk.fallbacks));
      }
      this.$.stats.textContent = parts.join(' \u00b7 ');
    }

    renderTable(rt, res) {
      const $ = this.$;
      const body = h('tbody');
      let total = 0;
      const row = (a, b, cls) => body.appendChild(h('tr', null, [
        h('td', { class: 'mono series', text: a }), h('td', { class: 'mono val' + (cls || ''), text: b })]));
      if (rt === 'vector' || rt === 'matrix') {
        const list = Array.isArray(res) ? res : [];
        total = list.length;
        const n = Math.min(total, MAX_ROWS);
        for (let i = 0; i < n; i++) {
          const s = list[i] || {};
          if (rt === 'vector') {
            const v = s.value ? String(s.value[1]) : s.histogram ? 'histogram ' + JSON.stringify(s.histogram[1]) : '';
            row(labelsStr(s.metric), v);
          } else {
            row(labelsStr(s.metric), (s.values || []).map(p => p[1] + ' @' + p[0]).join('\n'), ' multi');
          }
        }
      } else if ((rt === 'scalar' || rt === 'string') && Array.isArray(res)) {
        total = 1;
        row(rt, String(res[1]));
      }
      if (!total) body.appendChild(h('tr', null, h('td', { colspan: 2, class: 'muted', text: 'Empty query result' })));
      $.table.append(h('thead', null, h('tr', null, [h('th', { text: 'Series' }), h('th', { text: 'Value' })])), body);
      if (total > MAX_ROWS) {
        $.tnote.textContent = 'Showing the first ' + fmtInt(MAX_ROWS) + ' of ' + fmtInt(total) + ' series.';
        $.tnote.hidden = false;
      }
    }

    renderLegend() {
      const lg = this.$.legend, frag = document.createDocumentFragment();
      lg.textContent = '';
      this.graph.series.forEach((s, i) => {
        frag.appendChild(h('div', { class: 'legend-item', 'data-series-index': i, title: 'Click to show only this series (click again to show all)' },
          [swatch(colorOf(i)), h('span', { class: 'mono', text: s.name })]));
      });
      lg.appendChild(frag);
    }

    updateLegend() {
      const only = this.only;
      for (const el of this.$.legend.children) {
        const i = +el.getAttribute('data-series-index');
        el.classList.toggle('off', only >= 0 && i !== only);
        el.classList.toggle('solo', only === i);
      }
    }

    maybeRedraw() {
      if (!this.graph || this.tab !== 'graph' || this.$.cwrap.hidden) return;
      const w = Math.floor(this.$.cwrap.clientWidth), dpr = window.devicePixelRatio || 1;
      if (w !== this.lastW || dpr !== this.lastDpr) this.draw();
    }

    draw() {
      const g = this.graph, $ = this.$;
      if (!g || this.tab !== 'graph' || $.cwrap.hidden) return;
      const W = Math.max(120, Math.floor($.cwrap.clientWidth)), H = GRAPH_H;
      const dpr = window.devicePixelRatio || 1;
      this.lastW = W; this.lastDpr = dpr;
      for (const c of [$.canvas, $.overlay]) { c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); }
      const ctx = this.ctx || (this.ctx = $.canvas.getContext('2d', { willReadFrequently: true }));
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.fillStyle = '#ffffff';
      ctx.fillRect(0, 0, W, H);
      this.hideHover();

      const stacked = $.stacked.checked;
      const vis = [];
      for (let i = 0; i < g.series.length; i++) if (this.only < 0 || this.only === i) vis.push(i);
      const disp = stacked ? stackValues(g, vis) : vis.map(i => g.series[i].vs);
      let lo = Infinity, hi = -Infinity;
      for (const a of disp) {
        for (let j = 0; j < a.length; j++) {
          const v = a[j];
          if (v - v === 0) { if (v < lo) lo = v; if (v > hi) hi = v; }
        }
      }
      const hasData = lo <= hi;
      if (!hasData) { lo = 0; hi = 1; }
      if (stacked) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
      if (lo === hi) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }

      const top = 10, bottom = 24, right = 16, ph = H - top - bottom;
      const yt = niceTicks(lo, hi, Math.max(2, Math.floor(ph / 45)));
      const yMin = yt.min, yMax = yt.max;
      ctx.font = FONT;
      const ref = Math.max(Math.abs(yMin), Math.abs(yMax));
      const ylabels = yt.ticks.map(v => fmtTick(v, ref, yt.step));
      let lw = 0;
      for (const s of ylabels) lw = Math.max(lw, ctx.measureText(s).width);
      const left = Math.ceil(lw) + 12, pw = Math.max(10, W - left - right);
      const span = (g.end - g.start) || 1, sx = pw / span, sy = ph / (yMax - yMin);

      ctx.lineWidth = 1;
      ctx.strokeStyle = GRID;
      ctx.fillStyle = AXIS_TEXT;
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      yt.ticks.forEach((v, k) => {
        const y = Math.round(top + (yMax - v) * sy) + 0.5;
        ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
        ctx.fillText(ylabels[k], left - 6, y);
      });
      const xt = timeTicks(g.start, g.end, pw);
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      let lastR = -Infinity;
      for (const t of xt.ticks) {
        const x = Math.round(left + (t - g.start) * sx) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + ph); ctx.stroke();
        const label = tickLabel(t, xt.iv, span), w = ctx.measureText(label).width;
        if (x - w / 2 > lastR + 6 && x + w / 2 <= W) { ctx.fillText(label, x, top + ph + 6); lastR = x + w / 2; }
      }
      ctx.strokeStyle = AXIS;
      ctx.beginPath();
      ctx.moveTo(left + 0.5, top); ctx.lineTo(left + 0.5, top + ph + 0.5); ctx.lineTo(left + pw, top + ph + 0.5);
      ctx.stroke();

      ctx.save();
      ctx.beginPath(); ctx.rect(left, top, pw, ph); ctx.clip();
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.lineCap = 'round';
      const maxGap = g.step * 1.5;
      for (let k = 0; k < vis.length; k++) {
        const ts = g.series[vis[k]].ts, vs = disp[k];
        if (!ts.length) continue;
        ctx.strokeStyle = colorOf(vis[k]);
        ctx.beginPath();
        let seg = 0, lastT = 0, px = 0, py = 0;
        const dot = () => { if (seg === 1) { ctx.moveTo(px - 1.5, py); ctx.lineTo(px + 1.5, py); } };
        for (let j = 0; j < ts.length; j++) {
          const v = vs[j];
          if (v - v !== 0) { dot(); seg = 0; continue; }
          const x = left + (ts[j] - g.start) * sx, y = top + (yMax - v) * sy;
          if (seg > 0 && ts[j] - lastT <= maxGap) { ctx.lineTo(x, y); seg++; }
          else { dot(); ctx.moveTo(x, y); seg = 1; }
          lastT = ts[j]; px = x; py = y;
        }
        dot();
        ctx.stroke();
      }
      ctx.restore();
      if (!hasData) {
        ctx.fillStyle = '#6b737b';
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.font = '13px system-ui, sans-serif';
        ctx.fillText(g.series.length ? 'No drawable data points in this range' : 'Empty query result', left + pw / 2, top + ph / 2);
      }
      this.layout = { left, top, pw, ph, yMin, yMax, vis, disp, W, H, dpr, stacked, sx, sy };
      this.root.dataset.lines = String(hasData ? this.countLines(ctx, left, top, pw, ph, dpr, vis) : 0);
    }

    /** Counts the drawn series colours that appear (3+ pixels within 6 per channel) in the plot area. */
    countLines(ctx, left, top, pw, ph, dpr, vis) {
      const x0 = Math.floor(left * dpr), y0 = Math.floor(top * dpr);
      const w = Math.min(ctx.canvas.width - x0, Math.ceil(pw * dpr)), hh = Math.min(ctx.canvas.height - y0, Math.ceil(ph * dpr));
      if (w <= 0 || hh <= 0 || !vis.length) return 0;
      const used = Array.from(new Set(vis.map(i => i % PALETTE.length)));
      const cols = used.map(i => PAL_RGB[i]);
      const cnt = new Int32Array(cols.length);
      let left3 = cols.length;
      let img;
      try { img = ctx.getImageData(x0, y0, w, hh).data; } catch (_) { return 0; }
      for (let p = 0; p < img.length && left3 > 0; p += 4) {
        const r = img[p], gg = img[p + 1], b = img[p + 2];
        if (r > 240 && gg > 240 && b > 240) continue;
        for (let c = 0; c < cols.length; c++) {
          if (cnt[c] >= 3) continue;
          const q = cols[c];
          if (Math.abs(r - q[0]) <= 6 && Math.abs(gg - q[1]) <= 6 && Math.abs(b - q[2]) <= 6 && ++cnt[c] === 3) left3--;
        }
      }
      let found = 0;
      for (let c = 0; c < cnt.length; c++) if (cnt[c] >= 3) found++;
      return found;
    }

    hideHover() {
      const $ = this.$;
      $.tip.hidden = true;
      if (this.layout) {
        const oc = $.overlay.getContext('2d');
        oc.setTransform(1, 0, 0, 1, 0, 0);
        oc.clearRect(0, 0, $.overlay.width, $.overlay.height);
      }
    }

    doHover() {
      const e = this.hoverEv, L = this.layout, g = this.graph, $ = this.$;
      if (!e || !L || !g) return;
      const r = $.cwrap.getBoundingClientRect();
      const x = e.clientX - r.left, y = e.clientY - r.top;
      if (x < L.left || x > L.left + L.pw || y < L.top || y > L.top + L.ph) { this.hideHover(); return; }
      const t = g.start + (x - L.left) / L.sx;
      let best = -1, bj = -1, bd = Infinity;
      for (let k = 0; k < L.vis.length; k++) {
        const ts = g.series[L.vis[k]].ts;
        if (!ts.length) continue;
        const j = nearestIdx(ts, t), dt = Math.abs(ts[j] - t);
        if (dt > g.step * 1.5 && dt * L.sx > 8) continue;
        const v = L.disp[k][j];
        if (v - v !== 0) continue;
        const d = Math.abs(L.top + (L.yMax - v) * L.sy - y);
        if (d < bd) { bd = d; best = k; bj = j; }
      }
      const oc = $.overlay.getContext('2d');
      oc.setTransform(L.dpr, 0, 0, L.dpr, 0, 0);
      oc.clearRect(0, 0, L.W, L.H);
      let cx = x, tt = t;
      if (best >= 0) { tt = g.series[L.vis[best]].ts[bj]; cx = L.left + (tt - g.start) * L.sx; }
      const lx = Math.round(cx) + 0.5;
      oc.strokeStyle = 'rgba(40,44,52,0.5)';
      oc.lineWidth = 1;
      oc.beginPath(); oc.moveTo(lx, L.top); oc.lineTo(lx, L.top + L.ph); oc.stroke();
      const tip = $.tip;
      tip.textContent = '';
      tip.appendChild(h('div', { class: 'tt-time', text: fmtDate(tt * 1000) + ' UTC' }));
      if (best >= 0) {
        const idx = L.vis[best], s = g.series[idx], v = L.disp[best][bj], raw = s.vs[bj];
        const cy = L.top + (L.yMax - v) * L.sy;
        oc.fillStyle = colorOf(idx);
        oc.strokeStyle = '#ffffff';
        oc.lineWidth = 1.5;
        oc.beginPath(); oc.arc(cx, cy, 4, 0, Math.PI * 2); oc.fill(); oc.stroke();
        tip.appendChild(h('div', { class: 'tt-val' }, [swatch(colorOf(idx)), h('b', { text: fmtVal(raw) }),
          L.stacked ? h('span', { class: 'muted', text: ' (stacked: ' + fmtVal(v) + ')' }) : null]));
        const keys = Object.keys(s.metric).sort((a, b) => (a === '__name__' ? -1 : b === '__name__' ? 1 : a < b ? -1 : a > b ? 1 : 0));
        const lab = h('div', { class: 'tt-labels mono' });
        if (!keys.length) lab.appendChild(h('div', { class: 'muted', text: s.name === 'scalar' ? 'scalar' : '(no labels)' }));
        for (const k of keys) lab.appendChild(h('div', { text: k + '=' + quoteStr(s.metric[k]) }));
        tip.appendChild(lab);
      }
      tip.hidden = false;
      const tw = tip.offsetWidth, th = tip.offsetHeight;
      let tx = cx + 14;
      if (tx + tw > L.W) tx = Math.max(0, cx - 14 - tw);
      let ty = y + 14;
      if (ty + th > L.H) ty = Math.max(0, y - 14 - th);
      tip.style.left = tx + 'px';
      tip.style.top = ty + 'px';
    }

    /* --- completion --- */

    compOpen() { return !this.$.comps.hidden && this.comp.items.length > 0; }

    closeComp() {
      this.comp.seq++;
      this.comp.items = [];
      this.comp.sel = -1;
      this.$.comps.hidden = true;
      this.$.comps.textContent = '';
    }

    async updateComp() {
      const ta = this.$.expr;
      if (ta.selectionStart !== ta.selectionEnd) { this.closeComp(); return; }
      const pos = ta.selectionStart;
      const ctx = compContext(ta.value.slice(0, pos));
      const seq = ++this.comp.seq;
      if (!ctx || (ctx.kind === 'ident' && !ctx.prefix)) { this.closeComp(); return; }
      const cur = this.comp.ctx;
      if (cur && (cur.kind !== ctx.kind || cur.from !== ctx.from)) this.$.comps.hidden = true;
      let cands;
      try { cands = await candidates(ctx); } catch (_) { cands = []; }
      if (seq !== this.comp.seq || document.activeElement !== ta || ta.selectionStart !== pos) return;
      const items = filterCands(cands, ctx.prefix);
      if (!items.length) { this.closeComp(); return; }
      this.comp.ctx = ctx;
      this.comp.items = items;
      this.comp.sel = -1;
      this.comp.pos = pos;
      const ul = this.$.comps;
      ul.textContent = '';
      const frag = document.createDocumentFragment();
      for (const it of items) frag.appendChild(h('li', { class: 'k-' + it.kind, 'data-kind': it.kind, role: 'option', text: it.text }));
      ul.appendChild(frag);
      ul.scrollTop = 0;
      ul.hidden = false;
    }

    selComp(i) {
      this.comp.sel = i;
      const lis = this.$.comps.children;
      for (let k = 0; k < lis.length; k++) {
        lis[k].classList.toggle('sel', k === i);
        lis[k].setAttribute('aria-selected', String(k === i));
      }
      if (lis[i]) lis[i].scrollIntoView({ block: 'nearest' });
    }

    acceptComp(i) {
      const it = this.comp.items[i], ctx = this.comp.ctx, ta = this.$.expr;
      if (!it || !ctx) { this.closeComp(); return; }
      const pos = this.comp.pos, val = ta.value;
      const from = ctx.kind === 'value' ? ctx.from : pos - ctx.prefix.length;
      let to = pos, ins = it.text, caret;
      if (ctx.kind === 'value') {
        ins = escapeFor(it.text, ctx.quote);
        if (val[pos] === ctx.quote) caret = from + ins.length + 1;
        else { ins += ctx.quote; caret = from + ins.length; }
      } else {
        to = pos + /^[a-zA-Z0-9_:]*/.exec(val.slice(pos))[0].length;
        caret = from + ins.length;
      }
      ta.value = val.slice(0, from) + ins + val.slice(to);
      ta.setSelectionRange(caret, caret);
      this.closeComp();
      this.autosize();
    }

    onKey(e) {
      if (e.isComposing) return;
      if (this.compOpen()) {
        const n = this.comp.items.length, sel = this.comp.sel;
        if (e.key === 'ArrowDown') { e.preventDefault(); this.selComp((sel + 1) % n); return; }
        if (e.key === 'ArrowUp') { e.preventDefault(); this.selComp(sel <= 0 ? n - 1 : sel - 1); return; }
        if (e.key === 'Tab' && !e.shiftKey) { e.preventDefault(); this.acceptComp(Math.max(0, sel)); return; }
        if (e.key === 'Enter' && !e.shiftKey && sel >= 0) { e.preventDefault(); this.acceptComp(sel); return; }
        if (e.key === 'Escape') { e.preventDefault(); this.closeComp(); return; }
        if (e.key === 'ArrowLeft' || e.key === 'ArrowRight' || e.key === 'Home' || e.key === 'End') this.closeComp();
      }
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); this.run(); }
    }
  }

  /* ------------------------------------------------------------------ */
  /* Shared page pieces                                                 */
  /* ------------------------------------------------------------------ */

  function dataTable(headers, rows, cls) {
    return h('div', { class: 'table-scroll' }, h('table', { class: 'data ' + (cls || '') }, [
      h('thead', null, h('tr', null, headers.map(t => h('th', { text: t })))),
      h('tbody', null, rows)
    ]));
  }
  function badge(text, cls, title) { return h('span', { class: 'badge ' + (cls || ''), text, title }); }
  function labelSetsEl(sets) {
    sets = Array.isArray(sets) ? sets : (sets ? [sets] : []);
    if (!sets.length) return h('span', { class: 'muted', text: '{}' });
    return h('div', { class: 'mono labelsets' }, sets.map(s => h('div', { text: labelSetStr(s) })));
  }

  /** Loads `path` now and every 5 s while the page is shown, passing `data` to `draw`. */
  function poller(tk, main, title, path, draw) {
    const last = h('span', { class: 'muted small' });
    const btn = h('button', { type: 'button', class: 'btn', text: 'Refresh' });
    const err = h('div', { class: 'err-box', role: 'alert', hidden: true });
    const box = h('div', { class: 'page-body' }, h('p', { class: 'muted', text: 'Loading\u2026' }));
    main.append(h('div', { class: 'page-head' }, [h('h1', { text: title }), btn, last,
      h('span', { class: 'muted small', text: 'auto-refresh every 5 s' })]), err, box);
    let busy = false, first = true;
    const load = async () => {
      if (busy || tk !== token) return;
      busy = true; btn.disabled = true;
      try {
        const b = await api(path);
        if (tk !== token) return;
        box.textContent = '';
        draw(box, b.data || {});
        err.hidden = true; err.textContent = '';
        last.textContent = 'Last refreshed: ' + fmtDate(Date.now()).slice(11) + ' UTC';
      } catch (e) {
        if (tk !== token) return;
        if (first) box.textContent = '';
        err.textContent = (e && e.message) || String(e);
        err.hidden = false;
        last.textContent = 'Refresh failed at ' + fmtDate(Date.now()).slice(11) + ' UTC';
      } finally {
        busy = false; btn.disabled = false;
        if (first) { first = false; markLoaded(tk); }
      }
    };
    btn.addEventListener('click', load);
    const id = setInterval(load, 5000);
    cleanups.push(() => clearInterval(id));
    load();
  }

  /* ------------------------------------------------------------------ */
  /* Stores page                                                        */
  /* ------------------------------------------------------------------ */

  function storesPage(p) { poller(p.tk, p.main, 'Stores', '/api/v1/cluster', renderStores); }

  function renderStores(box, d) {
    if (d.healthChecked === false) box.appendChild(h('div', { class: 'note', text: 'first health checks still running' }));
    const groups = Array.isArray(d.groups) ? d.groups : [];
    if (!groups.length) { box.appendChild(h('p', { class: 'muted', text: 'No store groups known.' })); return; }
    groups.forEach((g, gi) => {
      const members = Array.isArray(g.members) ? g.members : [];
      let min = null, max = null, healthy = 0;
      for (const m of members) {
        if (m.minTime != null && (min == null || m.minTime < min)) min = m.minTime;
        if (m.maxTime != null && (max == null || m.maxTime > max)) max = m.maxTime;
        if (m.health === 'healthy') healthy++;
      }
      const pt = g.peerType || 'unknown';
      const rows = members.map(m => {
        const health = m.health || 'unknown';
        const lat = m.latencySeconds != null && isFinite(m.latencySeconds) ? (m.latencySeconds * 1000).toFixed(1) + ' ms' : '\u2013';
        const flags = [];
        if (m.hidden) flags.push(badge('hidden', 'b-hidden', 'left out of queries: unhealthy too long'));
        if (m.complete === false) flags.push(badge('incomplete', 'b-incomplete', 'this member does not hold the complete data of its group'));
        if (m.demoted) flags.push(badge('demoted', 'b-demoted', 'far slower than its group or failing, in the view all queriers share: asked last and probed until it recovers'));
        const sv = m.shared;
        const shared = sv && sv.requests >= 0.5
          ? (sv.medianSeconds != null ? 'p50 ' + (sv.medianSeconds * 1000).toFixed(1) + ' ms' : 'p50 \u2013') +
            ' \u00b7 ' + (sv.failureShare != null ? (sv.failureShare * 100).toFixed(0) + '% failed' : 'few requests') +
            ' \u00b7 ' + sv.views + (sv.views === 1 ? ' view' : ' views')
          : '\u2013';
        const sharedTitle = sv ? 'recent requests from all queriers: ' + sv.requests.toFixed(1) + ', failed: ' + sv.failures.toFixed(1) +
          (sv.p90Seconds != null ? '\np90: ' + (sv.p90Seconds * 1000).toFixed(1) + ' ms' : '') +
          '\nlast failure: ' + (sv.lastFailure || 'none') : '';
        return h('tr', { 'data-member': m.endpoint || '', 'data-health': health }, [
          h('td', { class: 'mono', text: m.endpoint || '' }),
          h('td', { text: m.source || '' }),
          h('td', null, badge(health, 'b-' + health)),
          h('td', { class: 'num', text: lat }),
          h('td', { class: 'num', text: m.inFlight != null ? String(m.inFlight) : '\u2013' }),
          h('td', { class: 'nowrap', text: fmtRange(m.minTime, m.maxTime) }),
          h('td', {
            class: 'nowrap', text: relTime(m.lastCheck),
            title: 'last check: ' + (m.lastCheck || 'never') + '\nlast success: ' + (m.lastSuccess || 'never')
          }),
          h('td', { class: 'nowrap', title: m.lastAnswer || '' }, [
            h('span', { class: 'num', text: fmtInt(m.answers || 0) }),
            h('span', { class: 'muted', text: m.lastAnswer ? ' \u00b7 ' + relTime(m.lastAnswer) : '' })]),
          h('td', { class: 'nowrap', 'data-col': 'shared', text: shared, title: sharedTitle }),
          h('td', { class: 'errtext', text: m.lastError || '' }),
          h('td', null, flags)
        ]);
      });
      const sec = h('section', { class: 'card group', 'data-group': gi, 'data-peer-type': g.peerType || '' }, [
        h('div', { class: 'group-head' }, [
          badge(pt, 'pt pt-' + pt),
          labelSetsEl(g.labelSets),
          h('div', { class: 'group-meta' }, [
            g.storeGroupId ? h('span', null, ['group id: ', h('span', { class: 'mono', text: String(g.storeGroupId) })]) : null,
            h('span', { text: 'time range: ' + fmtRange(min, max) + ' UTC' }),
            h('span', { text: healthy + '/' + members.length + ' healthy' })
          ])
        ]),
        members.length
          ? dataTable(['Endpoint', 'Source', 'Health', 'Latency', 'In flight', 'Time range (UTC)', 'Last check', 'Answers \u00b7 last', 'Shared view', 'Last error', 'Flags'], rows, 'members')
          : h('p', { class: 'muted', text: 'No members.' })
      ]);
      box.appendChild(sec);
    });
  }

  /* ------------------------------------------------------------------ */
  /* Cluster page                                                       */
  /* ------------------------------------------------------------------ */

  function clusterPage(p) { poller(p.tk, p.main, 'Cluster', '/api/v1/cluster', renderCluster); }

  function httpLink(addr) {
    if (!addr) return '';
    const href = /^https?:\/\//i.test(addr) ? addr : 'http://' + addr + '/';
    return h('a', { href, class: 'mono', text: addr, rel: 'noopener noreferrer' });
  }
  const yesNo = v => (v ? 'yes' : 'no');

  function renderCluster(box, d) {
    const parts = ['Joined: ' + yesNo(d.joined), 'Health checked: ' + yesNo(d.healthChecked)];
    if (d.gossip && typeof d.gossip === 'object') {
      const gs = d.gossip, k = Number(gs.keys) || 0;
      parts.push(gs.sealed
        ? 'sealed gossip: on, ' + k + (k === 1 ? ' key' : ' keys') + ', plaintext: ' + (gs.plaintext || 'unknown')
        : 'sealed gossip: off (no --cluster.secret-file)');
    }
    box.appendChild(h('div', { class: 'card summary', text: parts.join(' \u00b7 ') }));
    const members = Array.isArray(d.members) ? d.members : [];
    const self = members.find(m => m.isSelf);
    if (self) {
      const items = [
        ['Node', h('span', { class: 'mono', text: String(self.node) })],
        ['Generation', String(self.generation != null ? self.generation : '')],
        ['Peer type', self.peerType || '\u2013'],
        ['Component', self.component || '\u2013'],
        ['Ready', yesNo(self.ready)],
        ['Gossip address', h('span', { class: 'mono', text: self.gossipAddress || '\u2013' })],
        ['gRPC address', h('span', { class: 'mono', text: self.grpcAddress || '\u2013' })],
        ['HTTP address', self.httpAddress ? httpLink(self.httpAddress) : '\u2013'],
        ['Labels', labelSetsEl(self.labels)],
        ['Group id', self.storeGroupId || '\u2013'],
        ['Time range (UTC)', fmtRange(self.minTime, self.maxTime)],
        ['Version', self.version || '\u2013']
      ];
      if (self.error) items.push(['Error', h('span', { class: 'errtext', text: self.error })]);
      box.appendChild(h('section', { class: 'card' }, [h('h2', { text: 'This node' }),
        h('dl', { class: 'kv' }, items.map(([k, v]) => [h('dt', { text: k }), h('dd', null, v)]))]));
    }
    const rows = members.map(m => h('tr', { 'data-node': m.node != null ? String(m.node) : '', class: m.isSelf ? 'self' : '' }, [
      h('td', { class: 'mono' }, [String(m.node != null ? m.node : ''), m.isSelf ? h('span', { class: 'muted', text: ' (this node)' }) : null,
        m.generation != null ? h('div', { class: 'muted small', text: 'gen ' + m.generation }) : null]),
      h('td', null, badge(yesNo(m.ready), m.ready ? 'b-healthy' : 'b-unknown')),
      h('td', null, m.peerType ? badge(m.peerType, 'pt pt-' + m.peerType) : '\u2013'),
      h('td', { text: m.component || '' }),
      h('td', { class: 'mono', text: m.gossipAddress || '' }),
      h('td', { class: 'mono', text: m.grpcAddress || '' }),
      h('td', null, httpLink(m.httpAddress)),
      h('td', null, labelSetsEl(m.labels)),
      h('td', { class: 'mono', text: m.storeGroupId || '' }),
      h('td', { class: 'nowrap', text: (m.minTime == null && m.maxTime == null) ? '' : fmtRange(m.minTime, m.maxTime) }),
      h('td', { text: m.version || '' }),
      h('td', { class: 'errtext', text: m.error || '' })
    ]));
    box.appendChild(h('section', { class: 'card' }, [h('h2', { text: 'Gossip members (' + members.length + ')' }),
      members.length
        ? dataTable(['Node', 'Ready', 'Peer type', 'Component', 'Gossip address', 'gRPC address', 'HTTP address', 'Labels', 'Group id', 'Time range (UTC)', 'Version', 'Error'], rows, 'members')
        : h('p', { class: 'muted', text: 'No gossip members known.' })]));
  }

  /* ------------------------------------------------------------------ */
  /* Status page                                                        */
  /* ------------------------------------------------------------------ */

  function statusPage(p) {
    const { main, tk } = p;
    main.appendChild(h('div', { class: 'page-head' }, h('h1', { text: 'Status' })));
    const section = title => {
      const body = h('div', null, h('p', { class: 'muted', text: 'Loading\u2026' }));
      main.appendChild(h('section', { class: 'card' }, [h('h2', { text: title }), body]));
      return body;
    };
    const show = (body, content) => { body.textContent = ''; add(body, content); };
    const fail = (body, e) => show(body, h('div', { class: 'err-box', role: 'alert', text: (e && e.message) || String(e) }));
    const str = v => (v != null && typeof v === 'object' ? JSON.stringify(v) : String(v));
    const kv = obj => {
      const keys = Object.keys(obj || {});
      if (!keys.length) return h('p', { class: 'muted', text: 'Nothing reported.' });
      return h('table', { class: 'data kvtable' }, h('tbody', null, keys.map(k => h('tr', null, [
        h('th', { text: k }), h('td', { class: 'mono', text: str(obj[k]) })]))));
    };
    const bBuild = section('Build information');
    const bRun = section('Runtime information');
    const bFlags = section('Command-line flags');
    const p1 = api('/api/v1/status/buildinfo').then(b => show(bBuild, kv(b.data)), e => fail(bBuild, e));
    const p2 = api('/api/v1/status/runtimeinfo').then(b => show(bRun, kv(b.data)), e => fail(bRun, e));
    const p3 = api('/api/v1/status/flags').then(b => {
      const flags = b.data || {};
      const names = Object.keys(flags).sort();
      const rows = names.map(n => h('tr', { 'data-flag': n }, [h('td', { class: 'mono', text: n }), h('td', { class: 'mono', text: str(flags[n]) })]));
      const filter = h('input', { type: 'search', class: 'filter', placeholder: 'Filter flags', 'aria-label': 'Filter flags' });
      filter.addEventListener('input', () => {
        const q = filter.value.trim().toLowerCase();
        rows.forEach((r, i) => {
          const n = names[i];
          r.hidden = !!q && n.toLowerCase().indexOf(q) < 0 && str(flags[n]).toLowerCase().indexOf(q) < 0;
        });
      });
      show(bFlags, [filter, h('table', { class: 'data flags', 'data-role': 'flags' }, [
        h('thead', null, h('tr', null, [h('th', { text: 'Flag' }), h('th', { text: 'Value' })])),
        h('tbody', null, rows)])]);
    }, e => fail(bFlags, e));
    Promise.allSettled([p1, p2, p3]).then(() => markLoaded(tk));
  }

  /* ------------------------------------------------------------------ */
  /* Start                                                              */
  /* ------------------------------------------------------------------ */

  document.addEventListener('click', e => {
    const a = e.target && e.target.closest ? e.target.closest('a[data-nav]') : null;
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(a.getAttribute('data-nav'));
  });
  window.addEventListener('popstate', render);
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (currentGraph) currentGraph.panels.forEach(pn => pn.maybeRedraw()); }, 100);
  });
  render();
})();

#!/usr/bin/env python3
"""Converts `dual_test! { async fn NAME(app) {...} }` and `dual_test_with! { async fn NAME(app) with |c| {...} {...} }`
blocks into `#[wharf_testkit::dual_test]` functions (issue 21 item 11), in place. Usage:
    python3 scripts/convert-dual-tests.py FILE...    then: cargo fmt --all
Test names are unchanged. `on_both_backends!` uses are converted by hand: put
`#[wharf_testkit::dual_test]` on the `async fn NAME(backend: Backend)` and name it after the test."""
import sys, re

def skip_ws_comments(s, i):
    # returns index after whitespace (not comments)
    while i < len(s) and s[i] in ' \t\r\n':
        i += 1
    return i

def match_brace(s, i):
    """s[i] == '{' ; return index of matching '}'"""
    assert s[i] in '{(', (i, s[i:i+40])
    open_c = s[i]; close_c = '}' if open_c == '{' else ')'
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == '/' and s.startswith('//', i):
            j = s.find('\n', i); i = n if j < 0 else j; continue
        if c == '/' and s.startswith('/*', i):
            j = s.find('*/', i); i = j + 2; continue
        if c == 'r' and re.match(r'r#*"', s[i:i+10]) and (i == 0 or not (s[i-1].isalnum() or s[i-1] == '_')):
            m = re.match(r'r(#*)"', s[i:]); hashes = m.group(1)
            end = s.find('"' + hashes, i + len(m.group(0)))
            i = end + 1 + len(hashes); continue
        if c == '"':
            i += 1
            while s[i] != '"':
                if s[i] == '\\': i += 2
                else: i += 1
            i += 1; continue
        if c == "'":
            if s[i+1] == '\\':
                j = s.find("'", i + 2)
                # handle '\''
                if s[i+2] == "'" : j = s.find("'", i+3)
                i = j + 1; continue
            if i + 2 < n and s[i+2] == "'":
                i += 3; continue
            i += 1; continue
        if c in '{(':
            if c == open_c: depth += 1
        elif c in '})':
            if c == close_c:
                depth -= 1
                if depth == 0:
                    return i
        i += 1
    raise Exception('unbalanced')

def dedent(text, n=4):
    out = []
    for line in text.split('\n'):
        if line.startswith(' ' * n):
            out.append(line[n:])
        else:
            out.append(line)
    return '\n'.join(out)

def convert(src):
    out = []
    i = 0
    pat = re.compile(r'(?m)^(dual_test|dual_test_with)! \{')
    while True:
        m = pat.search(src, i)
        if not m:
            out.append(src[i:]); break
        out.append(src[i:m.start()])
        kind = m.group(1)
        open_at = m.end() - 1
        close_at = match_brace(src, open_at)
        inner = src[open_at + 1:close_at]
        items = []
        j = 0
        fnpat = re.compile(r'async fn (\w+)\((\w+)\)')
        while True:
            fm = fnpat.search(inner, j)
            if not fm:
                rest = inner[j:]
                assert rest.strip() == '', rest[:200]
                break
            lead = inner[j:fm.start()]
            name, var = fm.group(1), fm.group(2)
            k = fm.end()
            config = None
            if kind == 'dual_test_with':
                wm = re.compile(r'\s*with \|(\w+)\|\s*').match(inner, k)
                assert wm, inner[k:k+80]
                cvar = wm.group(1)
                k = wm.end()
                cend = match_brace(inner, k)
                config = (cvar, inner[k:cend + 1])
                k = cend + 1
            k = skip_ws_comments(inner, k)
            bend = match_brace(inner, k)
            body = inner[k:bend + 1]
            j = bend + 1
            lead_d = dedent(lead.strip('\n'))
            piece = ''
            if lead_d.strip():
                piece += lead_d.strip('\n') + '\n'
            if config:
                piece += '#[wharf_testkit::dual_test(|%s: &mut wharf_testkit::Config| %s)]\n' % (config[0], dedent(config[1]))
            else:
                piece += '#[wharf_testkit::dual_test]\n'
            piece += 'async fn %s(mut %s: wharf_testkit::TestApp) %s\n' % (name, var, dedent(body))
            items.append(piece)
        out.append('\n'.join(items).rstrip('\n'))
        i = close_at + 1
    return ''.join(out)

for p in sys.argv[1:]:
    s = open(p).read()
    t = convert(s)
    if t != s:
        open(p, 'w').write(t)
        print('converted', p)

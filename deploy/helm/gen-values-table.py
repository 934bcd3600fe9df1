#!/usr/bin/env python3
"""Writes the values table of docs/deploy-helm.md from the chart's values.yaml (issue 17):
each value documented by a `# -- text` comment on the line above it becomes a row
(dotted path, default, text). The table lives between the BEGIN/END markers of the doc.

    deploy/helm/gen-values-table.py          rewrite the table in place
    deploy/helm/gen-values-table.py --check  exit 1 if the committed table is stale
"""
import os
import re
import sys

import yaml

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
VALUES = os.path.join(TOP, "deploy", "helm", "strait", "values.yaml")
DOC = os.path.join(TOP, "docs", "deploy-helm.md")
BEGIN = "<!-- BEGIN VALUES TABLE (deploy/helm/gen-values-table.py) -->"
END = "<!-- END VALUES TABLE -->"


def rows():
    values = yaml.safe_load(open(VALUES))
    stack = []  # (indent, key)
    pending = None
    out = []
    for line in open(VALUES):
        m = re.match(r"^(\s*)# -- (.*)$", line)
        if m:
            pending = m.group(2).strip()
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if not m:
            if not line.strip().startswith("#"):
                pending = pending if not line.strip() else None
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if pending is not None:
            path = [k for _, k in stack]
            v = values
            for k in path:
                v = v[k]
            default = "`" + yaml.safe_dump(v, default_flow_style=True, width=1000).strip() + "`"
            default = default.replace("\n...", "")
            out.append("| `%s` | %s | %s |" % (".".join(path), default.replace("|", "\\|"),
                                                pending.replace("|", "\\|")))
            pending = None
    return out


def table():
    return "\n".join([BEGIN, "", "| value | default | meaning |", "|---|---|---|"] + rows()
                     + ["", END])


def main():
    doc = open(DOC).read()
    i, j = doc.index(BEGIN), doc.index(END) + len(END)
    new = doc[:i] + table() + doc[j:]
    if "--check" in sys.argv[1:]:
        if new != doc:
            print("docs/deploy-helm.md: the values table is stale; run "
                  "deploy/helm/gen-values-table.py", file=sys.stderr)
            return 1
        return 0
    if new != doc:
        open(DOC, "w").write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The battery's results as JUnit XML, the report format every CI system shows: one test
case per check, its reason as the failure (or skip) message, its evidence as the case's
output."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from esteira.cicd.evidence import CheckResult

SUITE = "esteira ci"


def junit_xml(results: Sequence[CheckResult], suite: str = SUITE) -> ET.ElementTree:
    failures = sum(not r.passed for r in results)
    skipped = sum(r.skipped for r in results)
    total_s = sum(r.duration_s for r in results)
    root = ET.Element("testsuites", name=suite, tests=str(len(results)),
                      failures=str(failures), time=f"{total_s:.3f}")  # fmt: skip
    cases = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                          failures=str(failures), errors="0", skipped=str(skipped),
                          time=f"{total_s:.3f}")  # fmt: skip
    for r in results:
        case = ET.SubElement(
            cases, "testcase", classname="esteira.ci", name=r.name, time=f"{r.duration_s:.3f}"
        )
        if not r.passed:
            ET.SubElement(case, "failure", message=r.reason).text = r.reason
        elif r.skipped:
            ET.SubElement(case, "skipped", message=r.reason)
        out = ET.SubElement(case, "system-out")
        out.text = json.dumps({"reason": r.reason, "evidence": r.evidence}, indent=2, default=str)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(results: Sequence[CheckResult], path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(results).write(target, encoding="utf-8", xml_declaration=True)
    return target

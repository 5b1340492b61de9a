"""Reads checkov's JSON report (`checkov ... -o json`) and fails on any failed check or on a
skip that gives no reason: every skip must say, where it is written, why the check does not
apply (`#checkov:skip=CKV_X:reason` in Terraform, `checkov.io/skipN: CKV_X=reason` in a
Kubernetes annotation).

    checkov-summary.py REPORT.json WHAT
Prints the counts and each skip with its reason.
"""

import json
import sys

# What checkov records for a skip written without a reason.
NO_REASON = "No comment provided"


def main():
    path, what = sys.argv[1], sys.argv[2]
    # One JSON document per directory checked (a list when several frameworks ran).
    text, decoder, reports, at = open(path).read(), json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        report, at = decoder.raw_decode(text, at)
        reports += report if isinstance(report, list) else [report]
    if not reports:
        print(f"{what}: checkov wrote no report", file=sys.stderr)
        sys.exit(1)
    problems = []
    passed = failed = skipped = 0
    reasons = {}
    for part in reports:
        if "results" not in part:  # nothing of this framework was found
            problems.append(f"{what}: checkov found nothing to check ({part.get('check_type', part)})")
            continue
        results = part["results"]
        passed += len(results.get("passed_checks", []))
        for check in results.get("failed_checks", []):
            failed += 1
            lines = check.get("file_line_range") or ["?"]
            problems.append(f"{what}: {check['check_id']} ({check['check_name']}) fails on "
                            f"{check['resource']} at {check['file_path']}:{lines[0]}")
        for check in results.get("skipped_checks", []):
            skipped += 1
            reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
            if reason == NO_REASON or len(reason) < 15:
                problems.append(f"{what}: {check['check_id']} is skipped on {check['resource']} "
                                f"without a reason ({reason!r})")
            reasons.setdefault((check["check_id"], reason), []).append(check["resource"])
        for error in results.get("parsing_errors", []):
            problems.append(f"{what}: checkov cannot parse {error}")
    for (check, reason), resources in sorted(reasons.items()):
        print(f"  skipped {check} on {len(resources)} resource(s): {reason}")
    for line in problems:
        print(line, file=sys.stderr)
    print(f"checkov on {what}: {passed} passed, {failed} failed, {skipped} skipped with reasons")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

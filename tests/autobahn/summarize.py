#!/usr/bin/env python3
"""Summarizes a kosoku (Autobahn TestSuite) report: counts per behaviour, and every case that
is neither OK nor an expected UNIMPLEMENTED (compression, groups 12.* and 13.*).

Exits 1 when any case FAILED, any non-compression case is not OK/NON-STRICT/INFORMATIONAL,
or any close was not clean (behaviorClose other than OK/INFORMATIONAL). kosoku itself exits 1
whenever a case is UNIMPLEMENTED, so CI relies on this script instead.
"""
import collections
import json
import sys

report = json.load(open(sys.argv[1]))
(agent, cases), = report.items()
counts = collections.Counter(c["behavior"] for c in cases.values())
closes = collections.Counter(c["behaviorClose"] for c in cases.values())
print(f"{agent}: {len(cases)} cases; behaviour {dict(counts)}; close {dict(closes)}")

def key(case_id):
    return [int(p) for p in case_id.split(".")]

bad = []
for case_id in sorted(cases, key=key):
    c = cases[case_id]
    compression = case_id.split(".")[0] in ("12", "13")
    ok_behaviour = {"OK", "NON-STRICT", "INFORMATIONAL"} | ({"UNIMPLEMENTED"} if compression else set())
    ok_close = {"OK", "INFORMATIONAL"} | ({"UNIMPLEMENTED"} if compression else set())
    if c["behavior"] not in ok_behaviour or c["behaviorClose"] not in ok_close:
        bad.append(f"  {case_id}: behaviour={c['behavior']} close={c['behaviorClose']}")
    elif c["behavior"] == "NON-STRICT":
        print(f"  (non-strict) {case_id}")
if bad:
    print("cases that are not acceptable:")
    print("\n".join(bad))
    sys.exit(1)
print("Autobahn: no FAILED case, every close clean")

"""rtcore quick start from Python: ranked locks used like threading.Lock.

Run from the repository root after `cargo build --release`:
    RTCORE_LIB=target/release/librtcore.so PYTHONPATH=python python3 examples/quickstart.py
"""
import rtcore

rtcore.load_ranks("NONE < accounts;\naccounts < audit;\n", "bank.ranks")
accounts = rtcore.Mutex("accounts", rank="accounts")
audit_log = rtcore.Mutex("audit-log", rank="audit")

with accounts, audit_log:  # the declared order: fine
    pass

with audit_log:
    with accounts:  # the wrong order: reported once on stderr
        pass

print("order violations seen:", rtcore.violations())
print(rtcore.last_report())

try:
    accounts.unlock()  # not held
except rtcore.RtcoreError as e:
    print(f"{e.status_name}: {e.message}")

// rtcore quick start in C++ (include/rtcore.hpp): ranked mutexes with the
// standard lock tools, errors as exceptions, and a trace of a few threads.
//
// Build and run from the repository root after `cargo build --release`:
//   g++ -std=c++17 -Iinclude examples/quickstart.cpp -Ltarget/release -lrtcore -Wl,-rpath,$PWD/target/release -pthread -o quickstart-cpp && ./quickstart-cpp
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "rtcore.hpp"

int main() {
    try {
        // accounts may be held when audit-log is taken, not the other way.
        rtcore::load_ranks("NONE < accounts;\naccounts < audit;\n", "bank.ranks");
        rtcore::mutex accounts("accounts", "accounts");
        rtcore::mutex audit_log("audit-log", "audit");

        // A trace of what follows, stopped at the end of the block.
        rtcore::attached_thread main_thread("main");
        rtcore::trace_session trace("quickstart-cpp.rtctrace");

        {
            std::scoped_lock both(accounts, audit_log);  // the right order
        }
        {
            std::lock_guard<rtcore::mutex> a(audit_log);
            std::lock_guard<rtcore::mutex> b(accounts);  // reported on stderr
        }

        // Workers hand a counter around under the mutex; the trace shows
        // their waits (rtcore's own condition variable: std::
        // condition_variable_any would work too, unseen by the trace).
        int turn = 0;
        rtcore::condition_variable changed;
        std::vector<std::thread> workers;
        for (int w = 0; w < 3; w++)
            workers.emplace_back([&, w] {
                rtcore::attached_thread me("worker");
                for (int round = 0; round < 5; round++) {
                    rtcore::region r("turn");
                    std::unique_lock<rtcore::mutex> l(accounts);
                    changed.wait(l, [&] { return turn % 3 == w; });
                    turn++;
                    changed.notify_all();
                }
            });
        for (auto &t : workers)
            t.join();
        trace.stop();

        // Misuse is an exception carrying the status and rtcore's message.
        try {
            accounts.unlock();
        } catch (const rtcore::error &e) {
            std::printf("unlocking a mutex not held: %s\n", e.what());
        }

        uint64_t violations = 0;
        rtc_lockrank_violations(&violations);
        char report[256];
        rtc_status checked = rtc_trace_check_file("quickstart-cpp.rtctrace", report, sizeof report);
        std::printf("order violations seen: %llu; %d turns; quickstart-cpp.rtctrace: %s\n",
                    static_cast<unsigned long long>(violations), turn,
                    checked == RTC_OK ? "consistent" : report);
        return violations == 1 && turn == 15 && checked == RTC_OK ? 0 : 1;
    } catch (const rtcore::error &e) {
        std::fprintf(stderr, "quickstart-cpp: %s\n", e.what());
        return 2;
    }
}

/* include/rtcore.hpp: the RAII types with the standard library's lock
 * tools (lock_guard, unique_lock, scoped_lock, shared_lock,
 * condition_variable_any), errors as exceptions, and a trace session whose
 * trace checks. Built with g++ -std=c++17 -Wall -Wextra -Werror. */
#include "rtcore.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include <stdlib.h>
#include <unistd.h>

#include "rtc_test.h"

static uint64_t violations() {
    uint64_t n = 0;
    rtc_lockrank_violations(&n);
    return n;
}

/* The status of the rtcore::error `f` throws, or -1 if it throws none. */
template <class F> static int thrown_status(F f, std::string *what = nullptr) {
    try {
        f();
    } catch (const rtcore::error &e) {
        if (what)
            *what = e.what();
        return static_cast<int>(e.status());
    }
    return -1;
}

static void errors_are_exceptions() {
    std::string what;
    CHECK(thrown_status([] { rtcore::mutex m("m", "no-such-rank"); }, &what) ==
          RTC_ERR_UNKNOWN_RANK);
    CHECK_CONTAINS(what.c_str(), "RTC_ERR_UNKNOWN_RANK: rtc_mutex_init: ");
    CHECK_CONTAINS(what.c_str(), "no-such-rank");
    /* Every status of rtcore.h has its name here (RTC_ERR_TRACE_CUT is
     * the last). */
    for (int s = RTC_OK; s <= RTC_ERR_TRACE_CUT; s++)
        CHECK(std::string(rtcore::status_name(static_cast<rtc_status>(s))) != "RTC_STATUS_UNKNOWN");
    CHECK(thrown_status([] { rtcore::load_ranks("a <", "broken.ranks"); }, &what) ==
          RTC_ERR_RANK_SYNTAX);
    CHECK_CONTAINS(what.c_str(), "broken.ranks:1");
    try {
        rtcore::load_ranks_file("/nonexistent/x.ranks");
        CHECK(!"no exception");
    } catch (const rtcore::error &e) {
        CHECK(e.status() == RTC_ERR_IO);
        CHECK(std::string(e.status_name()) == "RTC_ERR_IO");
    }
    rtcore::mutex m;
    CHECK(thrown_status([&] { m.unlock(); }) == RTC_ERR_NOT_OWNER);
    m.lock();
    CHECK(thrown_status([&] { m.lock(); }) == RTC_ERR_WOULD_DEADLOCK);
    CHECK(thrown_status([&] { (void)m.try_lock(); }) == RTC_ERR_WOULD_DEADLOCK);
    m.unlock();
}

static void standard_lock_tools() {
    rtcore::load_ranks("NONE < cpp_a;\ncpp_a < cpp_b;\n", "cpp.ranks");
    rtcore::mutex a("a", "cpp_a"), b("b", "cpp_b");
    uint64_t before = violations();
    {
        std::lock_guard<rtcore::mutex> ga(a);
        std::lock_guard<rtcore::mutex> gb(b);
    }
    {
        std::scoped_lock both(a, b);
    }
    {
        std::unique_lock<rtcore::mutex> ua(a);
        ua.unlock();
        ua.lock();
    }
    CHECK(violations() == before);
    {
        std::unique_lock<rtcore::mutex> ub(b);
        std::unique_lock<rtcore::mutex> ua(a); /* wrong order: reported */
    }
    CHECK(violations() == before + 1);

    /* try_lock: false while another thread holds it. */
    std::atomic<int> phase{0};
    std::thread holder([&] {
        std::lock_guard<rtcore::mutex> g(a);
        phase = 1;
        while (phase.load() != 2)
            usleep(1000);
    });
    while (phase.load() != 1)
        usleep(1000);
    CHECK(!a.try_lock());
    std::unique_lock<rtcore::mutex> tl(a, std::try_to_lock);
    CHECK(!tl.owns_lock());
    phase = 2;
    holder.join();
    CHECK(a.try_lock());
    a.unlock();
}

static void condition_variables() {
    /* std::condition_variable_any over rtcore::mutex. */
    rtcore::mutex m("queue", nullptr);
    std::condition_variable_any cv_any;
    std::vector<int> queue;
    std::thread producer([&] {
        for (int i = 0; i < 100; i++) {
            std::lock_guard<rtcore::mutex> g(m);
            queue.push_back(i);
            cv_any.notify_one();
        }
    });
    int got = 0, sum = 0;
    while (got < 100) {
        std::unique_lock<rtcore::mutex> l(m);
        cv_any.wait(l, [&] { return !queue.empty(); });
        for (int v : queue)
            sum += v;
        got += static_cast<int>(queue.size());
        queue.clear();
    }
    producer.join();
    CHECK(got == 100 && sum == 4950);

    /* rtcore::condition_variable: the same, with rtcore's own wait. */
    rtcore::condition_variable cv;
    bool ready = false;
    /* A thread that sets `ready` under `m` after `us` and notifies. */
    auto ready_after = [&](useconds_t us) {
        ready = false;
        return std::thread([&, us] {
            usleep(us);
            std::lock_guard<rtcore::mutex> g(m);
            ready = true;
            cv.notify_all();
        });
    };
    std::thread signaller = ready_after(10000);
    {
        std::unique_lock<rtcore::mutex> l(m);
        cv.wait(l, [&] { return ready; });
        CHECK(ready && l.owns_lock());
    }
    signaller.join();
    std::unique_lock<rtcore::mutex> l(m);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(cv.wait_for(l, std::chrono::milliseconds(20)) == std::cv_status::timeout);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(15));
    CHECK(!cv.wait_for(l, std::chrono::milliseconds(5), [] { return false; }));
    CHECK(l.owns_lock());
    /* "Forever" as the largest durations: they wait (no overflow into an
     * instant timeout) until notified. */
    std::thread late = ready_after(20000);
    t0 = std::chrono::steady_clock::now();
    CHECK(cv.wait_for(l, std::chrono::hours::max(), [&] { return ready; }));
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(15));
    late.join();
    std::thread later = ready_after(20000);
    std::cv_status st = std::cv_status::timeout;
    while (!ready)
        st = cv.wait_for(l, std::chrono::seconds::max());
    CHECK(st == std::cv_status::no_timeout);
    later.join();
}

static void shared_mutex_readers_and_writers() {
    rtcore::shared_mutex rw("table", nullptr);
    std::atomic<int> readers{0}, most{0};
    std::vector<std::thread> ts;
    /* Each reader holds the lock until all three hold it (bounded: a
     * writer-style exclusion would keep the count at 1 and time out). */
    for (int i = 0; i < 3; i++)
        ts.emplace_back([&] {
            std::shared_lock<rtcore::shared_mutex> r(rw);
            int n = ++readers;
            int m = most.load();
            while (n > m && !most.compare_exchange_weak(m, n)) {
            }
            for (int waited = 0; readers.load() < 3 && waited < 5000; waited++)
                usleep(1000);
        });
    for (auto &t : ts)
        t.join();
    CHECK(most.load() == 3); /* the readers held it together */
    {
        std::unique_lock<rtcore::shared_mutex> w(rw);
        /* Misuse on this thread is an exception; another thread gets
         * false. */
        CHECK(thrown_status([&] { (void)rw.try_lock_shared(); }) == RTC_ERR_WOULD_DEADLOCK);
        bool other = true;
        std::thread([&] { other = rw.try_lock_shared(); }).join();
        CHECK(!other);
    }
    CHECK(rw.try_lock_shared());
    rw.unlock_shared();
    CHECK(thrown_status([&] { rw.unlock(); }) == RTC_ERR_NOT_OWNER);
}

static void trace_session_and_spans(const std::string &dir) {
    std::string path = dir + "/cpp.rtctrace";
    rtcore::attached_thread me("cpp-main");
    CHECK(me.id() > 0);
    {
        rtcore::trace_session session(path.c_str());
        CHECK(rtc_trace_enabled() == 1);
        CHECK(thrown_status([&] { rtcore::trace_session again(path.c_str()); }) ==
              RTC_ERR_WRONG_STATE);
        {
            rtcore::task t("request");
            CHECK(t.id() > 0);
            rtcore::region r("handle");
            rtcore::blocking b("sleep");
            usleep(1000);
        }
        session.stop();
        CHECK(rtc_trace_enabled() == 0);
        CHECK(thrown_status([&] { session.stop(); }) == RTC_ERR_WRONG_STATE);
    }
    char report[4096];
    CHECK_STATUS(rtc_trace_check_file(path.c_str(), report, sizeof report), RTC_OK);
    CHECK_CONTAINS(report, "region begin 1,");
    CHECK_CONTAINS(report, "enter blocking 1,");
    /* Destroyed without stop(): stopped, and the trace is complete. */
    std::string path2 = dir + "/cpp-dtor.rtctrace";
    {
        rtcore::trace_session session(path2.c_str(), 100);
        rtcore::region r("short");
    }
    CHECK(rtc_trace_enabled() == 0);
    CHECK_STATUS(rtc_trace_check_file(path2.c_str(), report, sizeof report), RTC_OK);
    /* Not tracing: a region records nothing and costs no call. */
    { rtcore::region idle("idle"); }
    unlink(path.c_str());
    unlink(path2.c_str());
}

int main() {
    char tmpl[] = "/tmp/rtcore-test-cpp-XXXXXX";
    const char *dir = mkdtemp(tmpl);
    CHECK(dir != nullptr);
    errors_are_exceptions();
    standard_lock_tools();
    condition_variables();
    shared_mutex_readers_and_writers();
    if (dir) {
        trace_session_and_spans(dir);
        rmdir(dir);
    }
    return rtc_t_finish();
}

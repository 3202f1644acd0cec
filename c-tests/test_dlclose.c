/* Unloading (issue 13, row 2; docs/sysmon.md, "Unloading"): load rtcore and
 * a plugin with dlopen, let the plugin's hook run, do what the docs say
 * (remove the hook), dlclose the plugin, and run on while rtcore's hook
 * thread and sysmon keep going. rtcore itself stays loaded after its own
 * dlclose (it is linked -z nodelete). This program uses rtcore only through
 * dlsym (it is linked with --as-needed, so not to librtcore at start-up).
 * RTC_TEST_LIBDIR and RTC_TEST_OUT (set by run.sh) locate the library and
 * the plugin. */
#include <dlfcn.h>
#include <unistd.h>

#include "rtc_test.h"

#define SYM(handle, type, name) ((type)dlsym(handle, name))

int main(void) {
    alarm(60);
    const char *libdir = getenv("RTC_TEST_LIBDIR");
    const char *out = getenv("RTC_TEST_OUT");
    CHECK(libdir && out);
    if (!libdir || !out) return rtc_t_finish();
    char lib[1024], plugin[1024];
    snprintf(lib, sizeof lib, "%s/librtcore.so", libdir);
    snprintf(plugin, sizeof plugin, "%s/plugin_hook.so", out);

    void *rt = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
    CHECK(rt != NULL);
    if (!rt) { fprintf(stderr, "%s\n", dlerror()); return rtc_t_finish(); }
    void *pl = dlopen(plugin, RTLD_NOW);
    CHECK(pl != NULL);
    if (!pl) { fprintf(stderr, "%s\n", dlerror()); return rtc_t_finish(); }

    int (*install)(void) = SYM(pl, int (*)(void), "plugin_install");
    int (*uninstall)(void) = SYM(pl, int (*)(void), "plugin_uninstall");
    long (*runs)(void) = SYM(pl, long (*)(void), "plugin_runs");
    CHECK(install && uninstall && runs);
    CHECK(install() == 0);
    for (int i = 0; i < 2000 && runs() < 5; i++) usleep(1000);
    CHECK(runs() >= 5);

    /* The documented sequence: remove the plugin's hooks, then unload it. */
    CHECK(uninstall() == 0);
    CHECK(dlclose(pl) == 0);
    void *gone = dlopen(plugin, RTLD_NOW | RTLD_NOLOAD);
    CHECK(gone == NULL); /* really unloaded */
    if (gone) dlclose(gone);

    /* rtcore runs on: its hook thread and sysmon go on (another hook, a
     * world stop from an attached thread) for a while after the unload. */
    int (*attach)(const char *, uint64_t *) = SYM(rt, int (*)(const char *, uint64_t *), "rtc_thread_attach");
    int (*stop)(const char *) = SYM(rt, int (*)(const char *), "rtc_stop_the_world");
    int (*start)(void) = SYM(rt, int (*)(void), "rtc_start_the_world");
    int (*detach)(void) = SYM(rt, int (*)(void), "rtc_thread_detach");
    CHECK(attach && stop && start && detach);
    CHECK(attach("after-unload", NULL) == 0);
    for (int i = 0; i < 20; i++) {
        CHECK(stop("after unload") == 0);
        CHECK(start() == 0);
        usleep(10000);
    }
    CHECK(detach() == 0);

    /* rtcore is never unloaded. */
    CHECK(dlclose(rt) == 0);
    void *still = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
    CHECK(still != NULL);
    usleep(50000);
    if (still) {
        int (*shutdown)(void) = SYM(still, int (*)(void), "rtc_shutdown");
        CHECK(shutdown && shutdown() == 0);
    }
    return rtc_t_finish();
}

/* A plugin for test_dlclose.c: a shared object that registers a hook whose
 * code lives here, so unloading it while the hook is registered would leave
 * rtcore calling unmapped code. Its functions are looked up with dlsym. */
#include <stdatomic.h>
#include <stdint.h>

#include "rtcore.h"

static atomic_long runs;
static uint64_t hook_id;

static void plugin_hook(void *arg) {
    (void)arg;
    atomic_fetch_add(&runs, 1);
}

int plugin_install(void) {
    return rtc_sysmon_hook_add("plugin-hook", 1000000, plugin_hook, NULL, &hook_id);
}

int plugin_uninstall(void) {
    return rtc_sysmon_hook_remove(hook_id);
}

long plugin_runs(void) {
    return atomic_load(&runs);
}

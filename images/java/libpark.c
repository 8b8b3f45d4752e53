/* The launcher of a parked JVM (images/supervisor/park.c): java starts as the job would be
 * exec'ed (`java FLAGS -Xmx.. -Xss.. -jar main.jar`, in the job's cell, as its uid, with its
 * limits, cwd, environment and descriptors 0-2) plus `-agentpath:/opt/runner/libpark.so`, a
 * native JVMTI agent: no Java code of ours, no java.instrument module, no capability asked
 * for, so the JIT, the collector and class data sharing are as they would be without it.
 *
 * Its VMInit callback runs in the launcher's main thread at the end of JNI_CreateJavaVM: the
 * VM has started (modules, the system class loader, System.out), the launcher has not yet
 * loaded the main class (LauncherHelper.checkAndLoadMain comes after). There it waits for
 * its job: it says "r" on its control socket (the highest descriptor it holds) and blocks
 * until the supervisor says "g" (the job's files and stdin are in place, its window open).
 * Then it closes the socket, gives its JVMTI environment back and returns: from there on the
 * launcher does what it always does, so the main class is loaded by the application class
 * loader from the job's main.jar, and its thread, stack depth, uncaught exceptions, exit
 * status and shutdown are the launcher's own. tests/sandbox/test_park_java.py compares. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jvmti.h>

/* The highest descriptor open, or -1: the supervisor's control socket is the highest one a
 * job may have, and the JVM opens nothing that high. */
static int highest_fd(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int top = -1, own = dirfd(dir);
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        int fd = atoi(entry->d_name);
        if (entry->d_name[0] != '.' && fd != own && fd > top) top = fd;
    }
    closedir(dir);
    return top;
}

static void JNICALL vm_init(jvmtiEnv *jvmti, JNIEnv *jni, jthread thread) {
    (void)jni, (void)thread;
    int ctl = highest_fd();
    struct stat st;
    char word = 0;
    ssize_t got = -1;
    /* without a control socket (java started by hand with this agent) there is no job */
    if (ctl > 2 && fstat(ctl, &st) == 0 && S_ISSOCK(st.st_mode) && write(ctl, "r", 1) == 1)
        while ((got = read(ctl, &word, 1)) < 0 && errno == EINTR) {}
    if (ctl > 2) close(ctl);
    (*jvmti)->DisposeEnvironment(jvmti);
    if (got != 1 || word != 'g') _exit(125); /* no job: the supervisor let go */
}

JNIEXPORT jint JNICALL Agent_OnLoad(JavaVM *vm, char *options, void *reserved) {
    (void)options, (void)reserved;
    jvmtiEnv *jvmti;
    jvmtiEventCallbacks callbacks;
    if ((*vm)->GetEnv(vm, (void **)&jvmti, JVMTI_VERSION_1_2) != JNI_OK) return JNI_ERR;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.VMInit = vm_init;
    if ((*jvmti)->SetEventCallbacks(jvmti, &callbacks, sizeof callbacks) != JVMTI_ERROR_NONE ||
        (*jvmti)->SetEventNotificationMode(jvmti, JVMTI_ENABLE, JVMTI_EVENT_VM_INIT, NULL) !=
            JVMTI_ERROR_NONE)
        return JNI_ERR;
    return JNI_OK;
}

/*
 * dlopen_check.c - loading the library at run time, as Python's ctypes, Julia or Go do: before
 * calling anything else, compare glr_abi_version() with the ABI the program was written for
 * (GLR_ABI_VERSION of the header it was compiled with).
 *
 *   dlopen_check [LIBRARY]     LIBRARY defaults to the SONAME, libgitlab_runner_api.so.<ABI>,
 *                              found by the dynamic loader (LD_LIBRARY_PATH, ldconfig)
 *
 * Exit status: 0 the library loads and has this ABI; 1 otherwise (the message says why).
 */
#define _POSIX_C_SOURCE 200809L

#include <gitlab_runner_api.h> /* GLR_ABI_VERSION; nothing is linked */

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

#define GLR_STR2(x) #x
#define GLR_STR(x) GLR_STR2(x)

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "libgitlab_runner_api.so." GLR_STR(GLR_ABI_VERSION);
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen_check: %s\n", dlerror());
        return 1;
    }
    uint32_t (*abi_version)(void);
    const char *(*version)(void);
    /* POSIX's way to turn dlsym()'s void * into a function pointer. */
    *(void **)(&abi_version) = dlsym(lib, "glr_abi_version");
    *(void **)(&version) = dlsym(lib, "glr_version");
    if (abi_version == NULL || version == NULL) {
        fprintf(stderr, "dlopen_check: %s is not gitlab_runner_api (no glr_abi_version)\n", name);
        dlclose(lib);
        return 1;
    }
    uint32_t abi = abi_version();
    if (abi != GLR_ABI_VERSION) {
        fprintf(stderr, "dlopen_check: %s has ABI %u, this program needs %u\n", name, (unsigned)abi,
                (unsigned)GLR_ABI_VERSION);
        dlclose(lib);
        return 1;
    }
    printf("%s: gitlab_runner_api %s, ABI %u\n", name, version(), (unsigned)abi);
    dlclose(lib);
    return 0;
}

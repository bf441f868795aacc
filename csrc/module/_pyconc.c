/* pyconc binding: module init.
 *
 * Multi-phase init: the module state holds every type and exception, so
 * each (sub)interpreter gets its own; the types are heap types created from
 * specs bound to the module.  Each area of the API (threads, channels,
 * sync, pool, async) adds its types and functions through one init
 * function listed in `areas` below.
 */
#include "module.h"

PyObject *pcm_add_type(PyObject *module, PyType_Spec *spec, PyObject *bases)
{
    PyObject *tp = PyType_FromModuleAndSpec(module, spec, bases);
    if (tp == NULL)
        return NULL;
    const char *dot = strrchr(spec->name, '.');
    if (PyModule_AddObjectRef(module, dot ? dot + 1 : spec->name, tp) < 0) {
        Py_DECREF(tp);
        return NULL;
    }
    return tp;
}

static int import_attrs(const char *modname, const char *const *names, PyObject **slots)
{
    PyObject *mod = PyImport_ImportModule(modname);
    if (mod == NULL)
        return -1;
    for (int i = 0; names[i] != NULL; i++) {
        slots[i] = PyObject_GetAttrString(mod, names[i]);
        if (slots[i] == NULL) {
            Py_DECREF(mod);
            return -1;
        }
    }
    Py_DECREF(mod);
    return 0;
}

static const char *const error_names[] = {
    "PyconcError", "ChannelError", "SendError", "RecvError", "Empty", "Full",
    "SendTimeoutError", "RecvTimeoutError", "PoisonError", "WouldBlock", "DeadlockError",
    "UseAfterDrop", "AlreadySet", "UnwrapError", "JoinTimeoutError", "LockTimeoutError",
    "Closed", NULL,
};
static const char *const result_names[] = {"Ok", "Err", NULL};

typedef int (*pcm_area_init_fn)(PyObject *module, pcm_state *st);
static const pcm_area_init_fn areas[] = {
    pcm_threads_init,
    pcm_channels_init,
    pcm_sync_init,
    pcm_pool_init,
    pcm_aio_init,
    pcm_coord_init,
    NULL,
};

static int pcm_exec(PyObject *module)
{
    pcm_state *st = pcm_state_of_module(module);
    if (import_attrs("pyconc._errors", error_names, &st->PyconcError) < 0)
        return -1;
    if (import_attrs("pyconc._result", result_names, &st->Ok) < 0)
        return -1;
    for (int i = 0; areas[i] != NULL; i++)
        if (areas[i](module, st) < 0)
            return -1;
    return 0;
}

/* traverse/clear walk the state as one array of object pointers: it must
 * hold nothing else, with no padding, from its first field to its end. */
#define STATE_OBJECTS(st) ((PyObject **)&(st)->PyconcError)
#define STATE_NOBJECTS ((sizeof(pcm_state)) / sizeof(PyObject *))
_Static_assert(offsetof(pcm_state, PyconcError) == 0, "pcm_state starts with its objects");
_Static_assert(sizeof(pcm_state) % sizeof(PyObject *) == 0, "pcm_state holds object pointers only");
_Static_assert(offsetof(pcm_state, Ok) == sizeof(PyObject *) * (sizeof(error_names) / sizeof(error_names[0]) - 1),
               "error_names lists every exception field of pcm_state, in order");
_Static_assert(offsetof(pcm_state, aio) + sizeof(((pcm_state *)0)->aio) == sizeof(pcm_state),
               "the aio slice is the last field of pcm_state");

static int pcm_traverse(PyObject *module, visitproc visit, void *arg)
{
    pcm_state *st = pcm_state_of_module(module);
    if (st == NULL)
        return 0;
    PyObject **objs = STATE_OBJECTS(st);
    for (size_t i = 0; i < STATE_NOBJECTS; i++)
        Py_VISIT(objs[i]);
    return 0;
}

static int pcm_clear(PyObject *module)
{
    pcm_state *st = pcm_state_of_module(module);
    if (st == NULL)
        return 0;
    PyObject **objs = STATE_OBJECTS(st);
    for (size_t i = 0; i < STATE_NOBJECTS; i++)
        Py_CLEAR(objs[i]);
    return 0;
}

static void pcm_free(void *module)
{
    pcm_clear((PyObject *)module);
}

static PyModuleDef_Slot pcm_slots[] = {
    {Py_mod_exec, pcm_exec},
#ifdef Py_MOD_PER_INTERPRETER_GIL_SUPPORTED
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED},
#endif
#ifndef PCM_NO_MOD_GIL
    /* Every object protects its own state; nothing relies on the GIL. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

PyModuleDef pcm_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyconc._core",
    .m_doc = "pyconc's C core binding: threads, channels, locks, atomics, pool and sort.",
    .m_size = sizeof(pcm_state),
    .m_slots = pcm_slots,
    .m_traverse = pcm_traverse,
    .m_clear = pcm_clear,
    .m_free = pcm_free,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&pcm_module_def);
}

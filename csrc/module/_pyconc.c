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

int pcm_intern_names(const pcm_name *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].s)) == NULL)
            return -1;
    return 0;
}

/* st->NAME = MODULE.NAME for each name X(NAME) of a list. */
#define LOAD_ATTR(name)                                                        \
    if ((st->name = PyObject_GetAttrString(mod, #name)) == NULL)               \
        goto fail;
#define PCM_RESULTS(X) X(Ok) X(Err)

static int load_python_objects(pcm_state *st)
{
    PyObject *mod = PyImport_ImportModule("pyconc._errors");
    if (mod == NULL)
        return -1;
    PCM_ERRORS(LOAD_ATTR)
    Py_SETREF(mod, PyImport_ImportModule("pyconc._result"));
    if (mod == NULL)
        return -1;
    PCM_RESULTS(LOAD_ATTR)
    Py_DECREF(mod);
    return 0;
fail:
    Py_DECREF(mod);
    return -1;
}
#undef LOAD_ATTR

typedef int (*pcm_area_init_fn)(PyObject *module, pcm_state *st);
static const pcm_area_init_fn areas[] = {
    pcm_threads_init,
    pcm_channels_init,
    pcm_select_init,
    pcm_sync_init,
    pcm_pool_init,
    pcm_aio_init,
    pcm_coordchan_init,
    pcm_coord_init,
    pcm_gil_init,
    NULL,
};

static int pcm_exec(PyObject *module)
{
    pcm_state *st = pcm_state_of_module(module);
    if (load_python_objects(st) < 0)
        return -1;
    for (int i = 0; areas[i] != NULL; i++)
        if (areas[i](module, st) < 0)
            return -1;
    return 0;
}

/* Every field of pcm_state comes from PCM_STATE_OBJECTS, so traverse and
 * clear see all of them: a field added to the struct by hand fails here. */
#define COUNT_FIELD(name) +1
_Static_assert(sizeof(pcm_state) == (0 PCM_STATE_OBJECTS(COUNT_FIELD)) * sizeof(PyObject *),
               "pcm_state holds exactly the objects PCM_STATE_OBJECTS lists");
#undef COUNT_FIELD

static int pcm_traverse(PyObject *module, visitproc visit, void *arg)
{
    pcm_state *st = pcm_state_of_module(module);
    if (st == NULL)
        return 0;
#define VISIT_FIELD(name) Py_VISIT(st->name);
    PCM_STATE_OBJECTS(VISIT_FIELD)
#undef VISIT_FIELD
    return 0;
}

static int pcm_clear(PyObject *module)
{
    pcm_state *st = pcm_state_of_module(module);
    if (st == NULL)
        return 0;
#define CLEAR_FIELD(name) Py_CLEAR(st->name);
    PCM_STATE_OBJECTS(CLEAR_FIELD)
#undef CLEAR_FIELD
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

/* pyconc binding: the sync area (placeholder until the area lands). */
#include "module.h"

int pcm_sync_init(PyObject *module, pcm_state *st)
{
    (void)module;
    (void)st;
    return 0;
}

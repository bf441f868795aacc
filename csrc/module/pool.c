/* pyconc binding: the pool area (placeholder until the area lands). */
#include "module.h"

int pcm_pool_init(PyObject *module, pcm_state *st)
{
    (void)module;
    (void)st;
    return 0;
}

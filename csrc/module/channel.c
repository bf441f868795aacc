/* pyconc binding: the channels area (placeholder until the area lands). */
#include "module.h"

int pcm_channels_init(PyObject *module, pcm_state *st)
{
    (void)module;
    (void)st;
    return 0;
}

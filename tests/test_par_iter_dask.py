"""par_map(executor=) on a real dask.distributed cluster (the `dist` extra).

CI installs the extra (GIL builds), so this runs there; it skips only where
distributed is not installed (it has no free-threaded 3.13t wheels)."""
import pytest

import pyconc


def _square_plus(x: int) -> int:
    return x * x + 1


def _inverse(x: int) -> float:
    return 1 / x


def test_par_map_on_a_dask_local_cluster_equals_serial():
    pytest.importorskip("distributed", reason="needs the dist extra: pip install 'pyconc[dist]' "
                        "(CI installs it; distributed has no free-threaded 3.13t wheels)")
    from dask.distributed import Client, LocalCluster
    # threads, not processes: starts in well under a second on 2 cores and
    # needs no spawned interpreters; the chunks still travel through the
    # scheduler exactly as they would to remote workers
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        ex = client.get_executor()
        xs = list(range(1000))
        assert pyconc.par_map(_square_plus, xs, executor=ex) == list(map(_square_plus, xs))
        assert pyconc.par_map(str, range(37), chunksize=5, executor=ex) == list(map(str, range(37)))
        assert pyconc.par_map(_square_plus, [], executor=ex) == []
        with pytest.raises(ZeroDivisionError):
            pyconc.par_map(_inverse, [1, 0, 2, 0], chunksize=1, executor=ex)

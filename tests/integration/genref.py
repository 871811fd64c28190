"""An independent Python model of the generator source's documented
formulas (taskmanager/sources/gen_fields.h), for computing expected
results of jobs that read generated data."""
M64 = (1 << 64) - 1


def mix(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def u(seed, i, f, stream=0):
    return mix((seed ^ mix(i) ^ mix((1 << 62) + 2 * f + stream)) & M64)


def choice(seed, i, f, values, weights=None):
    x = u(seed, i, f)
    if not weights:
        return values[x % len(values)]
    total = sum(weights)
    r = x % total
    cum = 0
    for v, w in zip(values, weights):
        cum += w
        if r < cum:
            return v
    raise AssertionError("unreachable")


def uniform_int(seed, i, f, lo, hi):
    return lo + u(seed, i, f) % (hi - lo + 1)


def event_time(seed, i, f, start, rate, jitter_ms=0):
    t = start + int((i * 1000.0) // rate)
    if jitter_ms:
        t -= u(seed, i, f) % (jitter_ms + 1)
    return t

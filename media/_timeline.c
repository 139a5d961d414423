/* A call recording's timeline: RTP payloads placed on one stereo timeline of 8 kHz PCM16.
 *
 * The same algorithm as recorder/timeline.py's pure-Python `PyTimeline` (the fallback when
 * this module is not compiled; tests/recorder/test_timeline.py runs both on the same
 * packets): channel 0 is the caller, channel 1 what the caller hears. A packet is placed
 * by its RTP timestamp within its stream (RFC 3550 §5.1, unwrapped), a new stream (a new
 * SSRC) by its arrival time; the first packet to reach a sample wins; one packet far off
 * its slot is a straggler and dropped, two in a row that agree mean the sender's clock
 * jumped and re-anchor the stream. `take` hands over, interleaved, every frame older than
 * the holdback (silence where nothing came, and over paused spans) and forgets it.
 *
 * On the native plane the engine thread calls `timeline_place` for every tapped packet,
 * without the GIL, under the engine's mutex (`timeline_bind`): it copies the G.711 codes
 * into the ring and sets a few bits. `take` decodes them by 256-entry tables and
 * interleaves the channels, so the recorder's Python side handles one bytes object per
 * call and flush instead of runs of payload, numpy placement and interleaving.
 */
#include "_timeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHANNELS 2
#define FRAME_BYTES (2 * CHANNELS)

static int16_t DECODE[2][256];

/* G.711 Tables 2a (mu-law) and 1a (A-law), as media/g711.py builds them. */
static void build_tables(void) {
    for (int i = 0; i < 256; i++) {
        int u = ~i & 0xFF;
        int mag = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84;
        DECODE[TL_PCMU][i] = (int16_t)((u & 0x80) ? -mag : mag);
        int a = i ^ 0x55, seg = (a >> 4) & 0x07, t = (a & 0x0F) << 4;
        t += seg == 0 ? 8 : 0x108;
        if (seg > 1) t <<= seg - 1;
        DECODE[TL_PCMA][i] = (int16_t)((a & 0x80) ? t : -t);
    }
}

typedef struct {
    int has;
    uint32_t ssrc, last_ts; /* last_ts: the raw timestamp of the newest sample */
    int64_t anchor_pos, anchor_ts, last_unwrapped;
    int has_suspect;        /* one packet far off its slot: (ts, arrival) */
    uint32_t suspect_ts;
    int64_t suspect_pos;
} Stream;

typedef struct { int64_t start, stop; } Span; /* stop < 0: still paused */

struct Timeline {
    PyObject_HEAD
    pthread_mutex_t *mu; /* the engine's, while a leg records into this timeline */
    double started;
    int rate;
    int64_t holdback, skew, max_frames;
    int64_t written; /* frames handed over by take() */
    /* The tail, frames [written, written + len), in a ring of `cap` frames (a power of two:
     * frame F sits at F & (cap - 1)), per channel as the G.711 codes that came, decoded
     * only when handed over: an in-order packet is one copy of its payload and a few bit
     * writes, and a call holds 2.25 bytes per frame and channel. A channel is kept up to
     * frame hw[ch]; past it, it is silence nobody set yet (so nothing is cleared ahead). */
    uint8_t *code[CHANNELS];
    uint64_t *filled[CHANNELS]; /* bit per frame: a packet (or a pause) set it */
    uint64_t *alaw[CHANNELS];   /* bit per frame: the code is A-law (else mu-law) */
    int any_alaw[CHANNELS];     /* 0 while the channel never had A-law: its bits stay 0 */
    int64_t hw[CHANNELS];
    int64_t len, cap;
    Stream st[CHANNELS];
    Span *spans;
    size_t nspans, capspans;
    int accepting, paused, closed;
    unsigned long long dropped;
};

/* -- the core (no Python objects) ---------------------------------------------------------- */

static int64_t ts_delta(uint32_t ts, uint32_t ref) {
    return (int64_t)((uint32_t)(ts - ref + 0x80000000u)) - 0x80000000LL;
}

static int64_t pos_at(const Timeline *tl, double now) {
    double v = nearbyint((now - tl->started) * tl->rate); /* half to even, as Python's round */
    return v < 0 ? 0 : (int64_t)v;
}

/* Bits [from, to) of a ring bitmap (ring positions, from <= to <= cap) set or cleared. */
static void bits_range(uint64_t *bits, int64_t from, int64_t to, int value) {
    while (from < to) {
        int64_t word = from >> 6, off = from & 63, n = 64 - off < to - from ? 64 - off : to - from;
        uint64_t mask = (n == 64 ? ~0ULL : ((1ULL << n) - 1)) << off;
        bits[word] = value ? bits[word] | mask : bits[word] & ~mask;
        from += n;
    }
}

static int bit(const uint64_t *bits, int64_t i) { return (int)((bits[i >> 6] >> (i & 63)) & 1); }

/* Frames [from, to) of the timeline as ring segments: calls f(tl, ch, ring position,
 * offset from `from`, count) once or twice (where the ring wraps). */
#define RING_SEGMENTS(tl, from, to, body)                                                  \
    do {                                                                                   \
        int64_t seg_done_ = 0, seg_total_ = (to) - (from);                                 \
        while (seg_done_ < seg_total_) {                                                   \
            int64_t at = ((from) + seg_done_) & ((tl)->cap - 1), done = seg_done_;         \
            int64_t count = (tl)->cap - at < seg_total_ - seg_done_ ? (tl)->cap - at       \
                                                                    : seg_total_ - seg_done_; \
            body;                                                                          \
            seg_done_ += count;                                                            \
        }                                                                                  \
    } while (0)

static void set_frames(Timeline *tl, int ch, int64_t from, int64_t to, int filled, int alaw) {
    if (alaw) tl->any_alaw[ch] = 1;
    int law = tl->any_alaw[ch]; /* an all-mu-law channel (the usual) leaves its zero bits be */
    RING_SEGMENTS(tl, from, to, {
        (void)done;
        bits_range(tl->filled[ch], at, at + count, filled);
        if (law) bits_range(tl->alaw[ch], at, at + count, alaw);
    });
}

/* A ring of at least `frames` frames; what it holds moves to the same frames of the new one. */
static int reserve(Timeline *tl, int64_t frames) {
    if (frames <= tl->cap) return 0;
    int64_t cap = tl->cap ? tl->cap : 4096;
    while (cap < frames) cap *= 2;
    for (int ch = 0; ch < CHANNELS; ch++) {
        uint8_t *code = malloc((size_t)cap);
        uint64_t *filled = calloc((size_t)cap / 64, sizeof *filled);
        uint64_t *alaw = calloc((size_t)cap / 64, sizeof *alaw);
        if (code == NULL || filled == NULL || alaw == NULL) {
            free(code); free(filled); free(alaw);
            return -1;
        }
        for (int64_t f = tl->written; f < tl->hw[ch]; f++) { /* rare: the ring was too small */
            int64_t from = f & (tl->cap - 1), to = f & (cap - 1);
            code[to] = tl->code[ch][from];
            if (bit(tl->filled[ch], from)) filled[to >> 6] |= 1ULL << (to & 63);
            if (bit(tl->alaw[ch], from)) alaw[to >> 6] |= 1ULL << (to & 63);
        }
        free(tl->code[ch]); free(tl->filled[ch]); free(tl->alaw[ch]);
        tl->code[ch] = code;
        tl->filled[ch] = filled;
        tl->alaw[ch] = alaw;
    }
    tl->cap = cap;
    return 0;
}

/* The tail reaches timeline frame `end` (new frames are silence nobody set yet). */
static int grow(Timeline *tl, int64_t end) {
    int64_t want = end - tl->written;
    if (want <= tl->len) return 0;
    if (reserve(tl, want) < 0) return -1;
    tl->len = want;
    return 0;
}

/* Channel `ch` is kept up to frame `upto`: the frames in between are silence nobody set. */
static void store_up_to(Timeline *tl, int ch, int64_t upto) {
    if (upto <= tl->hw[ch]) return;
    set_frames(tl, ch, tl->hw[ch], upto, 0, 0);
    tl->hw[ch] = upto;
}

static void new_stream(Stream *s, uint32_t ssrc, int64_t pos, uint32_t ts, uint32_t last_ts,
                       int64_t last_unwrapped) {
    memset(s, 0, sizeof *s);
    s->has = 1;
    s->ssrc = ssrc;
    s->anchor_pos = pos;
    s->anchor_ts = ts;
    s->last_ts = last_ts;
    s->last_unwrapped = last_unwrapped;
}

/* Where a packet's first sample goes; 0 to drop it. */
static int stream_pos(const Timeline *tl, Stream *s, uint32_t ts, uint32_t ssrc, int64_t arrival,
                      int64_t *pos) {
    if (!s->has || s->ssrc != ssrc) {
        new_stream(s, ssrc, arrival, ts, ts, ts);
        *pos = arrival;
        return 1;
    }
    int64_t delta = ts_delta(ts, s->last_ts);
    int64_t unwrapped = s->last_unwrapped + delta;
    int64_t p = s->anchor_pos + unwrapped - s->anchor_ts;
    if (llabs(p - arrival) <= tl->skew) {
        s->has_suspect = 0;
        if (delta > 0) {
            s->last_ts = ts;
            s->last_unwrapped = unwrapped;
        }
        *pos = p;
        return 1;
    }
    if (s->has_suspect) {
        int64_t d = ts_delta(ts, s->suspect_ts);
        if (d > 0 && d <= tl->skew) { /* two agree: the sender's clock jumped */
            uint32_t first_ts = s->suspect_ts;
            int64_t first_pos = s->suspect_pos;
            new_stream(s, ssrc, first_pos, first_ts, ts, (int64_t)first_ts + d);
            *pos = first_pos + d;
            return 1;
        }
    }
    s->has_suspect = 1;
    s->suspect_ts = ts;
    s->suspect_pos = arrival;
    return 0;
}

static void drop(Timeline *tl, size_t n) { tl->dropped += n / 160 ? n / 160 : 1; }

void timeline_place(Timeline *tl, int ch, const unsigned char *p, size_t n, uint32_t ts,
                    uint32_t ssrc, int codec, double now) {
    if (!tl->accepting) return;
    if (n == 0) { tl->dropped++; return; }
    if (ch < 0 || ch >= CHANNELS || (codec != TL_PCMU && codec != TL_PCMA)) { drop(tl, n); return; }
    Stream *s = &tl->st[ch];
    int64_t pos;
    if (!stream_pos(tl, s, ts, ssrc, pos_at(tl, now), &pos)) { drop(tl, n); return; }
    if (n > 1) { /* the packet's last sample moves the stream on */
        uint32_t last = ts + (uint32_t)(n - 1);
        int64_t d = ts_delta(last, s->last_ts);
        if (d > 0) {
            s->last_ts = last;
            s->last_unwrapped += d;
        }
    }
    int64_t skip = tl->written - pos;
    if (skip >= (int64_t)n || pos + (int64_t)n - tl->written > tl->max_frames) { drop(tl, n); return; }
    if (skip < 0) skip = 0;
    int64_t start = pos + skip;
    if (grow(tl, pos + (int64_t)n) < 0) { drop(tl, n); return; }
    int64_t end = pos + (int64_t)n;
    /* p[f - pos] is the code for frame f */
    if (start >= tl->hw[ch]) { /* past everything placed: the usual in-order packet */
        store_up_to(tl, ch, start);
        RING_SEGMENTS(tl, start, end, memcpy(tl->code[ch] + at, p + skip + done, (size_t)count));
        set_frames(tl, ch, start, end, 1, codec == TL_PCMA);
        tl->hw[ch] = end;
        return;
    }
    store_up_to(tl, ch, end);
    int64_t mask = tl->cap - 1;
    for (int64_t f = start; f < end; f++) {
        int64_t r = f & mask;
        if (bit(tl->filled[ch], r)) continue; /* the first packet wins */
        tl->code[ch][r] = p[f - pos];
        tl->filled[ch][r >> 6] |= 1ULL << (r & 63);
        if (codec == TL_PCMA) {
            tl->any_alaw[ch] = 1;
            tl->alaw[ch][r >> 6] |= 1ULL << (r & 63);
        } else if (tl->any_alaw[ch]) {
            tl->alaw[ch][r >> 6] &= ~(1ULL << (r & 63));
        }
    }
}

void timeline_prefetch(const Timeline *tl) {
    for (size_t at = 0; at < sizeof *tl; at += 64) __builtin_prefetch((const char *)tl + at, 1, 3);
}

void timeline_prefetch_ring(const Timeline *tl, int ch) {
    int64_t r = tl->hw[ch] & (tl->cap - 1);
    __builtin_prefetch(tl->code[ch] + r, 1, 3);
    __builtin_prefetch(tl->code[ch] + ((r + 64) & (tl->cap - 1)), 1, 3);
    __builtin_prefetch(tl->code[ch] + ((r + 128) & (tl->cap - 1)), 1, 3);
    __builtin_prefetch(tl->filled[ch] + (r >> 6), 1, 3);
}

void timeline_bind(Timeline *tl, pthread_mutex_t *mu) { tl->mu = mu; }

pthread_mutex_t *timeline_mutex(const Timeline *tl) { return tl->mu; }

static void silence_spans(Timeline *tl) {
    for (size_t i = 0; i < tl->nspans; i++) {
        int64_t lo = tl->spans[i].start, hi = tl->written + tl->len;
        if (tl->spans[i].stop >= 0 && tl->spans[i].stop < hi) hi = tl->spans[i].stop;
        if (lo < tl->written) lo = tl->written;
        if (hi <= lo) continue;
        for (int ch = 0; ch < CHANNELS; ch++) { /* set: mu-law 0xFF, which is 0 */
            store_up_to(tl, ch, hi);
            RING_SEGMENTS(tl, lo, hi, memset(tl->code[ch] + at, 0xFF, (size_t)count); (void)done);
            set_frames(tl, ch, lo, hi, 1, 0);
        }
    }
}

/* Frames that are final now: the first `n` of the tail are handed over and forgotten. */
static int64_t final_frames(Timeline *tl, double now, int final) {
    int64_t limit = pos_at(tl, now) - tl->holdback;
    if (limit < 0) limit = 0;
    if (!final && grow(tl, limit) < 0) return -1; /* nothing came for it: silence */
    silence_spans(tl);
    if (final) return tl->len;
    int64_t end = tl->written + tl->len < limit ? tl->written + tl->len : limit;
    return end > tl->written ? end - tl->written : 0;
}

/* Frames [written, written + n) of one channel decoded into every other int16 of `out`
 * (silence where nothing was set), and into `mono` too unless it is NULL (the leg on its
 * own, for live analytics: written in the same pass, while the samples are in registers);
 * whole 64-frame words of one law go without a check. */
static void decode_channel(Timeline *tl, int ch, int64_t n, int16_t *out, int16_t *mono) {
    int64_t mask = tl->cap - 1;
    const uint8_t *code = tl->code[ch];
    const uint64_t *filled = tl->filled[ch], *alaw = tl->alaw[ch];
    for (int64_t i = 0; i < n;) {
        int64_t r = (tl->written + i) & mask;
        if ((r & 63) == 0 && n - i >= 64 && filled[r >> 6] == ~0ULL &&
            (alaw[r >> 6] == 0 || alaw[r >> 6] == ~0ULL)) {
            const int16_t *table = DECODE[alaw[r >> 6] ? TL_PCMA : TL_PCMU];
            if (mono != NULL) {
                for (int k = 0; k < 64; k++) out[2 * (i + k)] = mono[i + k] = table[code[r + k]];
            } else {
                for (int k = 0; k < 64; k++) out[2 * (i + k)] = table[code[r + k]];
            }
            i += 64;
            continue;
        }
        int16_t v = bit(filled, r) ? DECODE[bit(alaw, r)][code[r]] : 0;
        out[2 * i] = v;
        if (mono != NULL) mono[i] = v;
        i++;
    }
}

/* The first `n` frames, interleaved into `out` (little-endian, as the WAV) and, unless
 * `legs` is NULL, each channel on its own into legs[ch]; then forgotten. */
static void hand_over(Timeline *tl, int64_t n, int16_t *out, int16_t *const *legs) {
    for (int ch = 0; ch < CHANNELS; ch++) {
        store_up_to(tl, ch, tl->written + n);
        decode_channel(tl, ch, n, out + ch, legs != NULL ? legs[ch] : NULL);
    }
#if PY_BIG_ENDIAN
    for (int64_t i = 0; i < 2 * n; i++) out[i] = (int16_t)__builtin_bswap16((uint16_t)out[i]);
    if (legs != NULL)
        for (int ch = 0; ch < CHANNELS; ch++)
            for (int64_t i = 0; i < n; i++) legs[ch][i] = (int16_t)__builtin_bswap16((uint16_t)legs[ch][i]);
#endif
    tl->len -= n;
    tl->written += n;
    size_t kept = 0;
    for (size_t i = 0; i < tl->nspans; i++)
        if (tl->spans[i].stop < 0 || tl->spans[i].stop > tl->written) tl->spans[kept++] = tl->spans[i];
    tl->nspans = kept;
}

/* -- the Python type ---------------------------------------------------------------------- */

static void tl_lock(Timeline *tl) {
    if (tl->mu == NULL || pthread_mutex_trylock(tl->mu) == 0) return;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(tl->mu);
    Py_END_ALLOW_THREADS
}

static void tl_unlock(Timeline *tl) {
    if (tl->mu != NULL) pthread_mutex_unlock(tl->mu);
}

static int Timeline_init(Timeline *tl, PyObject *args, PyObject *kw) {
    static char *names[] = {"started", "rate", "holdback", "max_skew", "max_seconds", NULL};
    double started, holdback = 0.2, skew = 2.0, max_seconds = 60.0;
    int rate = 8000;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "d|iddd", names, &started, &rate, &holdback, &skew,
                                     &max_seconds))
        return -1;
    if (rate <= 0 || holdback < 0 || skew < 0 || max_seconds <= 0 || !isfinite(started)) {
        PyErr_SetString(PyExc_ValueError, "rate and max_seconds must be positive, holdback and max_skew not negative");
        return -1;
    }
    if (tl->code[0] != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a Timeline is initialised once");
        return -1;
    }
    tl->started = started;
    tl->rate = rate;
    tl->holdback = (int64_t)nearbyint(holdback * rate);
    tl->skew = (int64_t)(skew * rate);
    tl->max_frames = (int64_t)(max_seconds * rate);
    tl->accepting = 1;
    return reserve(tl, 4096) < 0 ? (PyErr_NoMemory(), -1) : 0;
}

static void Timeline_dealloc(Timeline *tl) {
    for (int ch = 0; ch < CHANNELS; ch++) {
        free(tl->code[ch]);
        free(tl->filled[ch]);
        free(tl->alaw[ch]);
    }
    free(tl->spans);
    Py_TYPE(tl)->tp_free((PyObject *)tl);
}

static int codec_index(PyObject *codec) {
    if (PyUnicode_Check(codec)) {
        if (PyUnicode_CompareWithASCIIString(codec, "PCMU") == 0) return TL_PCMU;
        if (PyUnicode_CompareWithASCIIString(codec, "PCMA") == 0) return TL_PCMA;
    }
    return -1;
}

static PyObject *Timeline_feed(Timeline *tl, PyObject *args) {
    int ch;
    Py_buffer payload;
    PyObject *codec;
    unsigned long ts, ssrc;
    double now;
    if (!PyArg_ParseTuple(args, "iy*Okkd", &ch, &payload, &codec, &ts, &ssrc, &now)) return NULL;
    if (ch < 0 || ch >= CHANNELS) {
        PyBuffer_Release(&payload);
        return PyErr_Format(PyExc_ValueError, "no channel %d", ch);
    }
    tl_lock(tl);
    timeline_place(tl, ch, payload.buf, (size_t)payload.len, (uint32_t)ts, (uint32_t)ssrc,
                   codec_index(codec), now);
    tl_unlock(tl);
    PyBuffer_Release(&payload);
    Py_RETURN_NONE;
}

static PyObject *take_frames(Timeline *tl, PyObject *args, PyObject *kw, int with_legs) {
    static char *names[] = {"now", "final", NULL};
    double now;
    int final = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "d|p", names, &now, &final)) return NULL;
    tl_lock(tl);
    int64_t start = tl->written, n = final_frames(tl, now, final);
    PyObject *data = n < 0 ? NULL : PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n * FRAME_BYTES);
    PyObject *left = NULL, *right = NULL;
    if (data != NULL && with_legs) {
        left = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n * 2);
        right = left == NULL ? NULL : PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n * 2);
        if (right == NULL) Py_CLEAR(data); /* nothing handed over: the frames stay */
    }
    if (data != NULL) {
        int16_t *legs[CHANNELS] = {NULL, NULL};
        if (with_legs) {
            legs[0] = (int16_t *)PyBytes_AS_STRING(left);
            legs[1] = (int16_t *)PyBytes_AS_STRING(right);
        }
        hand_over(tl, n, (int16_t *)PyBytes_AS_STRING(data), with_legs ? legs : NULL);
    }
    tl_unlock(tl);
    if (data == NULL) {
        Py_XDECREF(left);
        Py_XDECREF(right);
        return n < 0 ? PyErr_NoMemory() : NULL;
    }
    if (with_legs) return Py_BuildValue("(LNNN)", (long long)start, data, left, right);
    return Py_BuildValue("(LN)", (long long)start, data);
}

static PyObject *Timeline_take(Timeline *tl, PyObject *args, PyObject *kw) {
    return take_frames(tl, args, kw, 0);
}

static PyObject *Timeline_take_legs(Timeline *tl, PyObject *args, PyObject *kw) {
    return take_frames(tl, args, kw, 1);
}

static PyObject *Timeline_pause(Timeline *tl, PyObject *args) {
    double now;
    if (!PyArg_ParseTuple(args, "d", &now)) return NULL;
    tl_lock(tl);
    int ok = 1;
    if (!tl->paused && !tl->closed) {
        if (tl->nspans == tl->capspans) {
            size_t cap = tl->capspans ? tl->capspans * 2 : 4;
            Span *s = realloc(tl->spans, cap * sizeof *s);
            if (s != NULL) { tl->spans = s; tl->capspans = cap; }
        }
        tl->accepting = 0; /* fail closed: refused even when the span cannot be noted */
        tl->paused = 1;
        if (tl->nspans < tl->capspans) tl->spans[tl->nspans++] = (Span){pos_at(tl, now), -1};
        else ok = 0;
    }
    tl_unlock(tl);
    if (!ok) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Timeline_resume(Timeline *tl, PyObject *args) {
    double now;
    if (!PyArg_ParseTuple(args, "d", &now)) return NULL;
    tl_lock(tl);
    if (tl->paused && !tl->closed) {
        if (tl->nspans) {
            Span *s = &tl->spans[tl->nspans - 1];
            int64_t stop = pos_at(tl, now);
            s->stop = stop > s->start ? stop : s->start;
        }
        tl->paused = 0;
        tl->accepting = 1;
    }
    tl_unlock(tl);
    Py_RETURN_NONE;
}

static PyObject *Timeline_close(Timeline *tl, PyObject *unused) {
    tl_lock(tl);
    tl->closed = 1;
    tl->accepting = 0;
    tl_unlock(tl);
    Py_RETURN_NONE;
}

static PyObject *Timeline_position(Timeline *tl, PyObject *args) {
    double now;
    if (!PyArg_ParseTuple(args, "d", &now)) return NULL;
    return PyLong_FromLongLong(pos_at(tl, now));
}

static PyObject *get_written(Timeline *tl, void *c) {
    tl_lock(tl);
    int64_t v = tl->written;
    tl_unlock(tl);
    return PyLong_FromLongLong(v);
}

static PyObject *get_dropped(Timeline *tl, void *c) {
    tl_lock(tl);
    unsigned long long v = tl->dropped;
    tl_unlock(tl);
    return PyLong_FromUnsignedLongLong(v);
}

static PyObject *get_paused(Timeline *tl, void *c) { return PyBool_FromLong(tl->paused); }
static PyObject *get_accepting(Timeline *tl, void *c) { return PyBool_FromLong(tl->accepting); }
static PyObject *get_started(Timeline *tl, void *c) { return PyFloat_FromDouble(tl->started); }
static PyObject *get_rate(Timeline *tl, void *c) { return PyLong_FromLong(tl->rate); }

static PyGetSetDef Timeline_getset[] = {
    {"written", (getter)get_written, NULL, "frames handed over by take()", NULL},
    {"dropped", (getter)get_dropped, NULL, "packets refused: late, duplicate, off the timeline, unknown codec", NULL},
    {"paused", (getter)get_paused, NULL, "between pause() and resume()", NULL},
    {"accepting", (getter)get_accepting, NULL, "packets are placed (not paused, not closed)", NULL},
    {"started", (getter)get_started, NULL, "monotonic seconds of timeline frame 0", NULL},
    {"rate", (getter)get_rate, NULL, "samples per second", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Timeline_methods[] = {
    {"feed", (PyCFunction)Timeline_feed, METH_VARARGS, "feed(channel, payload, codec, ts, ssrc, now): place one RTP payload"},
    {"take", (PyCFunction)(void (*)(void))Timeline_take, METH_VARARGS | METH_KEYWORDS,
     "take(now, final=False) -> (first frame, interleaved little-endian int16 frames now final)"},
    {"take_legs", (PyCFunction)(void (*)(void))Timeline_take_legs, METH_VARARGS | METH_KEYWORDS,
     "take_legs(now, final=False) -> (first frame, frames, left, right): take, and each channel's "
     "frames on their own (little-endian int16), decoded in the same pass"},
    {"pause", (PyCFunction)Timeline_pause, METH_VARARGS, "pause(now): refuse audio; the span until resume() is silence"},
    {"resume", (PyCFunction)Timeline_resume, METH_VARARGS, "resume(now)"},
    {"close", (PyCFunction)Timeline_close, METH_NOARGS, "refuse every packet from now on"},
    {"position", (PyCFunction)Timeline_position, METH_VARARGS, "position(now) -> timeline frame of that instant"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject TimelineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._engine.Timeline",
    .tp_basicsize = sizeof(Timeline),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Timeline(started, rate=8000, holdback=0.2, max_skew=2.0, max_seconds=60.0): "
              "a recording's two channels placed from RTP payloads (media/_timeline.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Timeline_init,
    .tp_dealloc = (destructor)Timeline_dealloc,
    .tp_methods = Timeline_methods,
    .tp_getset = Timeline_getset,
};

/* frame_levels(pcm, frame) -> bytes: the RMS level in dBFS (a full-scale square wave is
 * 0 dB, digital silence -100 dB) of each whole `frame` samples of native int16 `pcm`, as
 * native float64 values: recorder.analyzers.frame_levels without the float copies. The
 * sums of squares are exact (integers), as they are in float64; the log10 may differ from
 * numpy's in the last bits. */
static PyObject *frame_levels(PyObject *self, PyObject *args) {
    Py_buffer in;
    Py_ssize_t frame;
    if (!PyArg_ParseTuple(args, "y*n", &in, &frame)) return NULL;
    if (frame <= 0 || in.len % 2) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "frame must be positive and pcm whole int16 samples");
        return NULL;
    }
    Py_ssize_t count = in.len / 2 / frame;
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(double));
    if (out == NULL) {
        PyBuffer_Release(&in);
        return NULL;
    }
    const int16_t *x = in.buf;
    double *level = (double *)PyBytes_AS_STRING(out), scale = (double)frame * 32768.0 * 32768.0;
    /* the GIL stays held: microseconds of work, less than handing it over would cost */
    for (Py_ssize_t f = 0; f < count; f++, x += frame) {
        int64_t sum = 0;
        for (Py_ssize_t i = 0; i < frame; i++) sum += (int32_t)x[i] * (int32_t)x[i];
        double db = 10.0 * log10((double)sum / scale + 1e-12);
        level[f] = db > -100.0 ? db : -100.0;
    }
    PyBuffer_Release(&in);
    return out;
}

static PyMethodDef timeline_functions[] = {
    {"frame_levels", frame_levels, METH_VARARGS,
     "frame_levels(pcm, frame) -> bytes: float64 RMS level (dBFS) of each whole frame of int16 pcm"},
    {NULL, NULL, 0, NULL},
};

int timeline_module_init(PyObject *m) {
    build_tables();
    if (PyModule_AddFunctions(m, timeline_functions) < 0) return -1;
    if (PyType_Ready(&TimelineType) < 0) return -1;
    Py_INCREF(&TimelineType);
    if (PyModule_AddObject(m, "Timeline", (PyObject *)&TimelineType) < 0) {
        Py_DECREF(&TimelineType);
        return -1;
    }
    return 0;
}

/* The routing hot path's loops, compiled.
 *
 * Routing one prompt spends most of its time in three loops. Two run once per word or per
 * character: splitting ASCII text into BERT's WordPiece words and looking each up in the
 * per-word id cache (switchman/wordpiece.py), and hashing a prompt's word and character
 * n-grams into sorted, counted buckets (switchman/features/lexical.py). In Python and
 * numpy they cost ~100 and ~150 us for a 480-character prompt, most of it interpreter and
 * per-call overhead; here each is one pass over the text. The others each replace a few
 * numpy calls whose set-up costs more than their arithmetic on one prompt: the static
 * encoder's sum of its tokens' int8 rows (switchman/embed_static.py), and the task
 * classifier's tf-idf product with its n-gram weights (features/task_classifier.py).
 *
 * The text scans return exactly what their pure-Python counterparts return; the two sums
 * the same values up to float32 rounding (summed in another order). The Python paths stay
 * the reference, and the path taken where this module was not built: tests/test_hotpath_*
 * compare the two on dev data and on generated input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- WordPiece words of ASCII text ------------------------------------------------ */

/* BERT's punctuation in ASCII: 33-47, 58-64, 91-96 and 123-126. */
static int is_ascii_punctuation(unsigned char c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96)
           || (c >= 123 && c <= 126);
}

/* Controls the normaliser drops: all of 0-31 and 127 except tab, newline, return. */
static int is_dropped_control(unsigned char c) {
    return (c < 32 && c != 9 && c != 10 && c != 13) || c == 127;
}

/* Appends the ids of one word (from the cache, else from miss(word)) to out. */
static int append_word_ids(PyObject *out, PyObject *cache, PyObject *miss,
                           const char *word, Py_ssize_t size) {
    PyObject *key = PyUnicode_FromStringAndSize(word, size);
    if (key == NULL)
        return -1;
    PyObject *ids = PyDict_GetItemWithError(cache, key); /* borrowed */
    if (ids != NULL) {
        Py_INCREF(ids);
    } else if (PyErr_Occurred()) {
        Py_DECREF(key);
        return -1;
    } else {
        ids = PyObject_CallOneArg(miss, key);
        if (ids == NULL) {
            Py_DECREF(key);
            return -1;
        }
    }
    Py_DECREF(key);
    PyObject *seq = PySequence_Fast(ids, "the word's ids must be a sequence");
    Py_DECREF(ids);
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyList_Append(out, items[i]) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

PyDoc_STRVAR(ascii_wordpiece_ids_doc,
"ascii_wordpiece_ids(text, cache, miss) -> list[int]\n\n"
"The WordPiece ids of ASCII ``text``: controls other than tab, newline and return\n"
"dropped, lower-cased, split into runs of letters and digits and single punctuation\n"
"characters; each word's ids are ``cache[word]``, or ``miss(word)`` where it is absent.");

static PyObject *ascii_wordpiece_ids(PyObject *self, PyObject *args) {
    PyObject *text, *cache, *miss;
    if (!PyArg_ParseTuple(args, "UO!O:ascii_wordpiece_ids", &text, &PyDict_Type, &cache,
                          &miss))
        return NULL;
    if (!PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(PyExc_ValueError, "ascii_wordpiece_ids takes ASCII text only");
        return NULL;
    }
    const unsigned char *data = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    char *word = PyMem_Malloc(length > 0 ? (size_t)length : 1);
    if (word == NULL)
        return PyErr_NoMemory();
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyMem_Free(word);
        return NULL;
    }
    Py_ssize_t size = 0; /* letters and digits of the word being read */
    for (Py_ssize_t i = 0; i <= length; i++) {
        unsigned char c = i < length ? data[i] : ' ';
        if (is_dropped_control(c))
            continue; /* dropped before splitting: the letters around it join */
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            word[size++] = (char)c;
            continue;
        }
        if (size > 0 && append_word_ids(out, cache, miss, word, size) < 0)
            goto fail;
        size = 0;
        if (is_ascii_punctuation(c)) {
            char mark = (char)c;
            if (append_word_ids(out, cache, miss, &mark, 1) < 0)
                goto fail;
        }
    }
    PyMem_Free(word);
    return out;
fail:
    PyMem_Free(word);
    Py_DECREF(out);
    return NULL;
}

/* ---- Hashed n-gram buckets -------------------------------------------------------- */

/* Must match switchman/features/lexical.py. */
#define WORD_BUCKETS (1u << 17)
#define CHAR_BITS 18
#define BUCKET_BITS 19 /* every bucket is below WORD_BUCKETS + 2**CHAR_BITS = 2**19 */
static const uint64_t POLYNOMIAL = 1000003u;
static const uint64_t FIBONACCI = 0x9E3779B97F4A7C15u;

static uint32_t crc_table[256];

static void build_crc_table(void) { /* CRC-32 (IEEE 802.3, reflected): zlib's crc32 */
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc32_update(uint32_t crc, const unsigned char *bytes, size_t size) {
    crc = ~crc;
    for (size_t i = 0; i < size; i++)
        crc = crc_table[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static int is_word_char(Py_UCS4 ch) { /* re's \w on str */
    return Py_UNICODE_ISALNUM(ch) || ch == '_';
}

/* UTF-8 of one code point (not a surrogate) into out; its length. */
static size_t utf8_encode(Py_UCS4 ch, unsigned char *out) {
    if (ch < 0x80) {
        out[0] = (unsigned char)ch;
        return 1;
    }
    if (ch < 0x800) {
        out[0] = (unsigned char)(0xC0 | (ch >> 6));
        out[1] = (unsigned char)(0x80 | (ch & 0x3F));
        return 2;
    }
    if (ch < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (ch >> 12));
        out[1] = (unsigned char)(0x80 | ((ch >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (ch & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (ch >> 18));
    out[1] = (unsigned char)(0x80 | ((ch >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((ch >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (ch & 0x3F));
    return 4;
}

static uint32_t crc32_of_code_points(uint32_t crc, int kind, const void *data,
                                     Py_ssize_t start, Py_ssize_t stop) {
    unsigned char utf8[4];
    for (Py_ssize_t i = start; i < stop; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (ch < 0x80) {
            unsigned char byte = (unsigned char)ch;
            crc = crc32_update(crc, &byte, 1);
        } else {
            crc = crc32_update(crc, utf8, utf8_encode(ch, utf8));
        }
    }
    return crc;
}

/* Sorts keys below 2**BUCKET_BITS in place (LSD radix, two passes); scratch as long. */
static void radix_sort(uint32_t *keys, uint32_t *scratch, Py_ssize_t n) {
    const int low_bits = 10, high_bits = BUCKET_BITS - 10;
    Py_ssize_t low[1 << 10] = {0}, high[1 << (BUCKET_BITS - 10)] = {0};
    for (Py_ssize_t i = 0; i < n; i++) {
        low[keys[i] & ((1u << low_bits) - 1)]++;
        high[keys[i] >> low_bits]++;
    }
    Py_ssize_t total = 0;
    for (int d = 0; d < (1 << low_bits); d++) {
        Py_ssize_t count = low[d];
        low[d] = total;
        total += count;
    }
    total = 0;
    for (int d = 0; d < (1 << high_bits); d++) {
        Py_ssize_t count = high[d];
        high[d] = total;
        total += count;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        scratch[low[keys[i] & ((1u << low_bits) - 1)]++] = keys[i];
    for (Py_ssize_t i = 0; i < n; i++)
        keys[high[scratch[i] >> low_bits]++] = scratch[i];
}

PyDoc_STRVAR(ngram_row_doc,
"ngram_row(text) -> (bytearray, bytearray) | None\n\n"
"Distinct buckets (int32, increasing) of lower-cased ``text``'s hashed word uni- and\n"
"bigrams and character 3- to 5-grams, and each one's count (float32), as\n"
"switchman.features.lexical computes them. None for text holding a surrogate code point\n"
"(which has no UTF-8), left to the Python path and its error.");

static PyObject *ngram_row(PyObject *self, PyObject *args) {
    PyObject *text;
    if (!PyArg_ParseTuple(args, "U:ngram_row", &text))
        return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (kind != PyUnicode_1BYTE_KIND) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 ch = PyUnicode_READ(kind, data, i);
            if (ch >= 0xD800 && ch <= 0xDFFF)
                Py_RETURN_NONE;
        }
    }
    /* Words are at most n / 3 (two characters and a separator), pairs one fewer; grams
       at most 3n. */
    Py_ssize_t capacity = 2 * (n / 3 + 1) + 3 * n + 1;
    uint32_t *keys = PyMem_Malloc(2 * (size_t)capacity * sizeof(uint32_t));
    if (keys == NULL)
        return PyErr_NoMemory();
    uint32_t *scratch = keys + capacity;
    Py_ssize_t count = 0;

    /* Words: maximal runs of two or more word characters; CRC-32 of each one's UTF-8, and
       of each neighbouring pair joined by a space. */
    int have_previous = 0;
    uint32_t previous = 0;
    for (Py_ssize_t i = 0; i < n;) {
        if (!is_word_char(PyUnicode_READ(kind, data, i))) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < n && is_word_char(PyUnicode_READ(kind, data, i)))
            i++;
        if (i - start < 2)
            continue;
        uint32_t crc = crc32_of_code_points(0, kind, data, start, i);
        keys[count++] = crc & (WORD_BUCKETS - 1);
        if (have_previous) {
            uint32_t pair = crc32_update(previous, (const unsigned char *)" ", 1);
            pair = crc32_of_code_points(pair, kind, data, start, i);
            keys[count++] = pair & (WORD_BUCKETS - 1);
        }
        previous = crc;
        have_previous = 1;
    }

    /* Character n-grams: the polynomial rolling hash over code points (modulo 2**64),
       plus the gram's size, multiplicatively hashed to CHAR_BITS bits. */
    for (Py_ssize_t i = 0; i + 3 <= n; i++) {
        uint64_t hash = PyUnicode_READ(kind, data, i);
        for (Py_ssize_t size = 2; size <= 5 && i + size <= n; size++) {
            hash = hash * POLYNOMIAL + PyUnicode_READ(kind, data, i + size - 1);
            if (size >= 3) {
                uint64_t mixed = (hash + (uint64_t)size) * FIBONACCI;
                keys[count++] = WORD_BUCKETS + (uint32_t)(mixed >> (64 - CHAR_BITS));
            }
        }
    }

    radix_sort(keys, scratch, count);
    Py_ssize_t distinct = 0;
    for (Py_ssize_t i = 0; i < count; i++)
        if (i == 0 || keys[i] != keys[i - 1])
            distinct++;
    PyObject *buckets = PyByteArray_FromStringAndSize(NULL, distinct * 4);
    PyObject *counts = PyByteArray_FromStringAndSize(NULL, distinct * 4);
    if (buckets == NULL || counts == NULL) {
        Py_XDECREF(buckets);
        Py_XDECREF(counts);
        PyMem_Free(keys);
        return NULL;
    }
    int32_t *bucket_out = (int32_t *)PyByteArray_AS_STRING(buckets);
    float *count_out = (float *)PyByteArray_AS_STRING(counts);
    Py_ssize_t j = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i == 0 || keys[i] != keys[i - 1]) {
            bucket_out[++j] = (int32_t)keys[i];
            count_out[j] = 0.0f;
        }
        count_out[j] += 1.0f;
    }
    PyMem_Free(keys);
    return Py_BuildValue("(NN)", buckets, counts);
}



/* ---- Sums over a prompt's rows of a weight table ---------------------------------- */

typedef struct {
    Py_buffer view;
    int held;
} Held;

/* Holds obj's buffer: C-contiguous items of struct format ``format`` ('b': int8, 'f':
   float32, 'i': int32), ``items`` of them (any number when negative), writable if asked. */
static int hold(PyObject *obj, Held *held, const char *format, Py_ssize_t items,
                int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &held->view, flags) < 0)
        return -1;
    held->held = 1;
    if (strcmp(held->view.format, format) != 0
        || (items >= 0 && held->view.len / held->view.itemsize != items)) {
        PyErr_Format(PyExc_ValueError, "%s must be contiguous '%s' items (%zd of them)", name,
                     format, items);
        return -1;
    }
    return 0;
}

static void release(Held *held, int n) {
    for (int h = 0; h < n; h++)
        if (held[h].held)
            PyBuffer_Release(&held[h].view);
}

PyDoc_STRVAR(token_rows_sum_doc,
"token_rows_sum(ids, codes, scales, out)\n\n"
"Writes into ``out`` (float32, d) the sum over the token ``ids`` (a list of ints) of\n"
"``scales[id] * codes[id]``: the rows of an int8 table (vocab x d) with one float32\n"
"scale per row. ``scales.take(ids) @ codes.take(ids, axis=0)``, in one pass.");

static PyObject *token_rows_sum(PyObject *self, PyObject *args) {
    PyObject *ids, *objects[3];
    if (!PyArg_ParseTuple(args, "O!OOO:token_rows_sum", &PyList_Type, &ids, &objects[0],
                          &objects[1], &objects[2]))
        return NULL;
    Held held[3] = {{{0}, 0}};
    PyObject *result = NULL;
    if (hold(objects[1], &held[1], "f", -1, 0, "scales") < 0
        || hold(objects[2], &held[2], "f", -1, 1, "out") < 0)
        goto done;
    Py_ssize_t vocab = held[1].view.len / 4, d = held[2].view.len / 4;
    if (hold(objects[0], &held[0], "b", vocab * d, 0, "codes") < 0)
        goto done;
    const int8_t *codes = held[0].view.buf;
    const float *scales = held[1].view.buf;
    float *out = held[2].view.buf;
    memset(out, 0, (size_t)d * sizeof(float));
    Py_ssize_t n = PyList_GET_SIZE(ids);
    for (Py_ssize_t t = 0; t < n; t++) {
        Py_ssize_t id = PyLong_AsSsize_t(PyList_GET_ITEM(ids, t));
        if (id == -1 && PyErr_Occurred())
            goto done;
        if (id < 0 || id >= vocab) {
            PyErr_Format(PyExc_IndexError, "token id %zd is outside the table (%zd rows)", id,
                         vocab);
            goto done;
        }
        if (t + 1 < n) { /* the next token's row, scattered in a 12 MB table */
            Py_ssize_t next = PyLong_AsSsize_t(PyList_GET_ITEM(ids, t + 1));
            if (next >= 0 && next < vocab)
                for (Py_ssize_t line = 0; line < d; line += 64)
                    __builtin_prefetch(codes + next * d + line);
            else
                PyErr_Clear(); /* reported when its turn comes */
        }
        const int8_t *row = codes + id * d;
        float scale = scales[id];
        for (Py_ssize_t j = 0; j < d; j++)
            out[j] += scale * (float)row[j];
    }
    result = Py_None;
    Py_INCREF(result);
done:
    release(held, 3);
    return result;
}

/* Rows of the weights asked for this many n-grams ahead of their use. */
#define PREFETCH 16

PyDoc_STRVAR(tfidf_scores_doc,
"tfidf_scores(indptr, indices, counts, idf, coef, out)\n\n"
"Writes into ``out`` (float32, n x T) each prompt's L2-normalised tf-idf row times\n"
"``coef`` (float32, W x T). The rows are CSR: prompt i's distinct n-gram ``indices``\n"
"(int32, each below W) and ``counts`` (float32, each >= 1) are those at\n"
"``indptr[i]:indptr[i + 1]`` (int64); a weight is (1 + log count) * idf[index].");

static PyObject *tfidf_scores(PyObject *self, PyObject *args) {
    PyObject *objects[6];
    if (!PyArg_ParseTuple(args, "OOOOOO:tfidf_scores", &objects[0], &objects[1], &objects[2],
                          &objects[3], &objects[4], &objects[5]))
        return NULL;
    Held held[6] = {{{0}, 0}};
    PyObject *result = NULL;
    if (hold(objects[0], &held[0], "l", -1, 0, "indptr") < 0
        || hold(objects[1], &held[1], "i", -1, 0, "indices") < 0
        || hold(objects[3], &held[3], "f", -1, 0, "idf") < 0)
        goto done;
    Py_ssize_t rows = held[0].view.len / 8 - 1, entries = held[1].view.len / 4;
    Py_ssize_t width = held[3].view.len / 4;
    if (rows < 0) {
        PyErr_SetString(PyExc_ValueError, "indptr must hold at least one offset");
        goto done;
    }
    if (hold(objects[2], &held[2], "f", entries, 0, "counts") < 0
        || hold(objects[4], &held[4], "f", -1, 0, "coef") < 0
        || hold(objects[5], &held[5], "f", -1, 1, "out") < 0)
        goto done;
    Py_ssize_t tasks = width > 0 ? held[4].view.len / 4 / width : 0;
    if (width == 0 || tasks * width * 4 != held[4].view.len
        || rows * tasks * 4 != held[5].view.len) {
        PyErr_SetString(PyExc_ValueError, "coef must be W x T (W = len(idf)) and out n x T");
        goto done;
    }
    const int64_t *indptr = held[0].view.buf;
    const int32_t *indices = held[1].view.buf;
    const float *counts = held[2].view.buf, *idf = held[3].view.buf;
    const float *coef = held[4].view.buf;
    float *out = held[5].view.buf;
    memset(out, 0, (size_t)(rows * tasks) * sizeof(float));
    for (Py_ssize_t r = 0; r < rows; r++) {
        int64_t start = indptr[r], stop = indptr[r + 1];
        if (start < 0 || stop < start || stop > entries) {
            PyErr_Format(PyExc_ValueError, "indptr is not increasing within the %zd entries",
                         entries);
            goto done;
        }
        float *scores = out + r * tasks, squares = 0.0f;
        for (int64_t i = start; i < stop; i++) {
            if (indices[i] < 0 || indices[i] >= width) {
                PyErr_Format(PyExc_IndexError, "n-gram bucket %d is outside the weights (%zd)",
                             (int)indices[i], width);
                goto done;
            }
            if (i + PREFETCH < stop) { /* rows lie far apart (a 2**19-row table): ask early */
                const float *ahead = coef + (Py_ssize_t)indices[i + PREFETCH] * tasks;
                __builtin_prefetch(ahead);
                __builtin_prefetch(ahead + tasks - 1); /* a row may straddle two lines */
                __builtin_prefetch(idf + indices[i + PREFETCH]);
            }
            float weight = (1.0f + logf(counts[i])) * idf[indices[i]];
            squares += weight * weight;
            const float *row = coef + (Py_ssize_t)indices[i] * tasks;
            for (Py_ssize_t t = 0; t < tasks; t++)
                scores[t] += weight * row[t];
        }
        float norm = fmaxf(sqrtf(squares), 1e-12f);
        for (Py_ssize_t t = 0; t < tasks; t++)
            scores[t] /= norm;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    release(held, 6);
    return result;
}

PyDoc_STRVAR(task_probabilities_doc,
"task_probabilities(embeddings, log_chars, coef, intercept, scores, lexical_intercept,\n"
"                   share, out)\n\n"
"Writes into ``out`` (float32, n x T) the task classifier's P(task | prompt): the\n"
"softmax of ``[embedding, (log_chars - 6) / 1.5] @ coef + intercept`` (float32 embeddings\n"
"n x d, float64 log_chars, float32 coef (d + 1) x T and intercept T), blended\n"
"geometrically, ``share`` to the rest, with the one-vs-rest lexical classifier's\n"
"normalised probabilities from its ``scores`` (float32 n x T) plus ``lexical_intercept``\n"
"(float32 T); ``scores`` None: the embedding classifier alone. float32 arithmetic.");

/* log-softmax of ``values`` (T of them) in place, in float32 */
static void log_softmax_f32(float *values, Py_ssize_t tasks) {
    float top = values[0], total = 0.0f;
    for (Py_ssize_t t = 1; t < tasks; t++)
        top = fmaxf(top, values[t]);
    for (Py_ssize_t t = 0; t < tasks; t++) {
        values[t] -= top;
        total += expf(values[t]);
    }
    float log_total = logf(total);
    for (Py_ssize_t t = 0; t < tasks; t++)
        values[t] -= log_total;
}

static PyObject *task_probabilities(PyObject *self, PyObject *args) {
    PyObject *objects[7];
    double share;
    if (!PyArg_ParseTuple(args, "OOOOOOdO:task_probabilities", &objects[0], &objects[1],
                          &objects[2], &objects[3], &objects[4], &objects[5], &share,
                          &objects[6]))
        return NULL;
    int lexical = objects[4] != Py_None;
    Held held[7] = {{{0}, 0}};
    PyObject *result = NULL;
    if (hold(objects[1], &held[1], "d", -1, 0, "log_chars") < 0
        || hold(objects[3], &held[3], "f", -1, 0, "intercept") < 0)
        goto done;
    Py_ssize_t rows = held[1].view.len / 8, tasks = held[3].view.len / 4;
    if (hold(objects[0], &held[0], "f", -1, 0, "embeddings") < 0
        || hold(objects[6], &held[6], "f", rows * tasks, 1, "out") < 0
        || hold(objects[2], &held[2], "f", -1, 0, "coef") < 0)
        goto done;
    Py_ssize_t dim = rows > 0 ? held[0].view.len / 4 / rows : 0;
    if (tasks == 0 || rows * dim * 4 != held[0].view.len
        || (dim + 1) * tasks * 4 != held[2].view.len) {
        PyErr_SetString(PyExc_ValueError, "embeddings must be n x d (n = len(log_chars)), "
                        "coef (d + 1) x T and intercept T, with T > 0");
        goto done;
    }
    if (lexical && (hold(objects[4], &held[4], "f", rows * tasks, 0, "scores") < 0
                    || hold(objects[5], &held[5], "f", tasks, 0, "lexical_intercept") < 0))
        goto done;
    const float *embeddings = held[0].view.buf, *coef = held[2].view.buf;
    const float *intercept = held[3].view.buf;
    const double *log_chars = held[1].view.buf;
    float *out = held[6].view.buf;
    float *lexical_row = PyMem_Malloc((size_t)tasks * sizeof(float));
    if (lexical_row == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    float own = (float)share, other = (float)(1.0 - share);
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float *x = embeddings + r * dim;
        float *logits = out + r * tasks;
        memset(logits, 0, (size_t)tasks * sizeof(float));
        for (Py_ssize_t j = 0; j < dim; j++) {
            const float *row = coef + j * tasks;
            for (Py_ssize_t t = 0; t < tasks; t++)
                logits[t] += x[j] * row[t];
        }
        float length = (float)((log_chars[r] - 6.0) / 1.5);
        for (Py_ssize_t t = 0; t < tasks; t++)
            logits[t] = (logits[t] + length * coef[dim * tasks + t]) + intercept[t];
        log_softmax_f32(logits, tasks);
        if (lexical) {
            const float *scores = (const float *)held[4].view.buf + r * tasks;
            const float *offset = held[5].view.buf;
            float total = 0.0f;
            for (Py_ssize_t t = 0; t < tasks; t++) {
                lexical_row[t] = 1.0f / (1.0f + expf(-(scores[t] + offset[t])));
                total += lexical_row[t];
            }
            for (Py_ssize_t t = 0; t < tasks; t++)
                logits[t] = own * logits[t] + other * logf(lexical_row[t] / total + 1e-9f);
            log_softmax_f32(logits, tasks);
        }
        for (Py_ssize_t t = 0; t < tasks; t++)
            logits[t] = expf(logits[t]);
    }
    PyMem_Free(lexical_row);
    result = Py_None;
    Py_INCREF(result);
done:
    release(held, 7);
    return result;
}

static PyMethodDef methods[] = {
    {"ascii_wordpiece_ids", ascii_wordpiece_ids, METH_VARARGS, ascii_wordpiece_ids_doc},
    {"ngram_row", ngram_row, METH_VARARGS, ngram_row_doc},
    {"token_rows_sum", token_rows_sum, METH_VARARGS, token_rows_sum_doc},
    {"tfidf_scores", tfidf_scores, METH_VARARGS, tfidf_scores_doc},
    {"task_probabilities", task_probabilities, METH_VARARGS, task_probabilities_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hotpath",
    "The routing hot path's loops, compiled (see switchman/_hotpath.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__hotpath(void) {
    build_crc_table();
    return PyModule_Create(&module);
}

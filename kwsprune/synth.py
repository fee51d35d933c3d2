"""The built-in demo data: keywords spoken by espeak-ng (from the espeakng-loader wheel), no download.

A "speaker" is one voice, voice variant, speaking rate and pitch, written as an id such as
'en-us+f2-r150-p45'. Each speaker says each word once; the word is placed at a random offset in one
second over coloured background noise at a random SNR, drawn from `seed` and the clip's name.
espeak-ng carries state from one utterance to the next (its pitch flutter runs on), so words are
spoken in fixed chunks of the sorted clip list, each by a fresh process: the dataset is the same for
the same seed, speakers and words.
"""

import ctypes
import multiprocessing
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soxr

from kwsprune.audio import fit_length
from kwsprune.paths import CLIP_SAMPLES, SAMPLE_RATE
from kwsprune.sources import CORE_WORDS, Clip, speaker_hash_split
from kwsprune.validation import InputError

VOICES = ("en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us-nyc")
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
    "klatt3", "Alex", "Andy", "Annie", "adam", "anika", "aunty", "belinda", "benjamin", "david", "ed",
    "edward", "grandma", "grandpa", "ian", "john", "linda", "max", "michel", "norbert", "paul",
    "quincy", "rob", "robert", "steph", "travis", "victor", "zac",
)
RATES = (110, 230)  # words per minute, inclusive range
PITCHES = (15, 85)  # espeak's 0-100 pitch scale
SNR_DB = (5.0, 30.0)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_RATE, _PITCH = 1, 3
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def draw_speakers(n_speakers: int, seed: int) -> list[str]:
    """`n_speakers` distinct speaker ids drawn from the voices x variants x rates x pitches grid (at most a tenth of
    it, so that the draw ends quickly)."""
    most = len(VOICES) * len(VARIANTS) * (RATES[1] - RATES[0] + 1) * (PITCHES[1] - PITCHES[0] + 1) // 10
    if n_speakers > most:
        raise InputError(f"--n-speakers {n_speakers}: the demo's voices make at most {most} distinct speakers here; "
                         f"give fewer")
    rng = np.random.default_rng(seed)
    speakers: dict[str, None] = {}
    while len(speakers) < n_speakers:
        voice, variant = rng.choice(VOICES), rng.choice(VARIANTS)
        rate, pitch = rng.integers(RATES[0], RATES[1] + 1), rng.integers(PITCHES[0], PITCHES[1] + 1)
        speakers[f"{voice}+{variant}-r{rate}-p{pitch}"] = None
    return list(speakers)


def synth_clips(n_speakers: int, seed: int, words=CORE_WORDS) -> tuple[list[Clip], list[str]]:
    """One clip per speaker and word, named like Speech Commands and split by its speaker hash."""
    clips = [
        Clip(f"{word}/{speaker}_nohash_0.wav", word, speaker, speaker_hash_split(speaker))
        for speaker in draw_speakers(n_speakers, seed)
        for word in words
    ]
    return clips, list(words)


def open_espeak():
    """Load espeak-ng from its wheel; return `speak(text, voice, rate, pitch) -> int16 audio` and its rate."""
    try:
        import espeakng_loader
    except ImportError:
        raise InputError("the demo data needs espeak-ng: pip install espeakng-loader") from None
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.c_void_p, ctypes.c_void_p,
    ]
    rate_hz = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if rate_hz <= 0:
        raise InputError("espeak-ng failed to start: reinstall espeakng-loader")
    chunks: list[np.ndarray] = []

    def collect(wav, n_samples, _events):
        if n_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        return 0

    callback = _SYNTH_CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)

    def speak(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_RATE, rate, 0)
        lib.espeak_SetParameter(_PITCH, pitch, 0)
        chunks.clear()
        lib.espeak_ng_SetRandSeed(ctypes.c_long(0))  # some voices draw from rand()
        data = text.encode()
        lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    speak.callback = callback  # the C side holds only a raw pointer: keep the callback alive
    return speak, rate_hz


def coloured_noise(n_samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.fft.rfftfreq(n_samples)
    freqs[0] = freqs[1]
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n_samples)
    return noise / np.sqrt(np.mean(noise**2))


def _speak_request(clip: Clip) -> tuple[str, str, int, int]:
    voice, rest = clip.speaker.split("+", 1)
    variant, rate, pitch = rest.rsplit("-", 2)
    return clip.label, f"{voice}+{variant}", int(rate[1:]), int(pitch[1:])


def _speak_in_fresh_process(requests) -> tuple[int, list[np.ndarray]]:
    speak, rate_hz = open_espeak()
    return rate_hz, [speak(*request) for request in requests]


def speak_words(clips: list[Clip], chunk_size: int = 250, workers: int = 2) -> tuple[int, dict[str, np.ndarray]]:
    """The spoken word of every clip (int16 at espeak's rate), by relpath; chunks run in fresh processes."""
    ordered = sorted(clips, key=lambda c: c.relpath)
    chunks = [[_speak_request(c) for c in ordered[i:i + chunk_size]] for i in range(0, len(ordered), chunk_size)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, max_tasks_per_child=1) as pool:
        results = list(pool.map(_speak_in_fresh_process, chunks))
    spoken = [audio for _, chunk in results for audio in chunk]
    return results[0][0], dict(zip((c.relpath for c in ordered), spoken))


def render_clip(clip: Clip, spoken: np.ndarray, spoken_rate_hz: int, seed: int) -> np.ndarray:
    """One demo clip, (16000,) float32 not normalised, from its spoken word (int16 at `spoken_rate_hz`)."""
    word = soxr.resample(spoken.astype(np.float32) / 32768, spoken_rate_hz, SAMPLE_RATE).astype(np.float32)
    voiced = np.flatnonzero(np.abs(word) > 0.02 * np.abs(word).max(initial=0))
    if len(voiced) == 0:
        raise InputError(f"espeak-ng said nothing for {clip.relpath}")
    word = word[voiced[0]:voiced[-1] + 1]
    if len(word) > CLIP_SAMPLES:
        word = fit_length(word)
    rng = np.random.default_rng([seed, zlib.crc32(clip.relpath.encode())])
    clip_audio = np.zeros(CLIP_SAMPLES, np.float64)
    offset = rng.integers(0, CLIP_SAMPLES - len(word) + 1)
    clip_audio[offset:offset + len(word)] = word
    speech_rms = np.sqrt(np.mean(word.astype(np.float64) ** 2))
    snr_db = rng.uniform(*SNR_DB)
    noise = coloured_noise(CLIP_SAMPLES, rng.uniform(0.0, 2.0), rng)
    clip_audio += noise * speech_rms / 10 ** (snr_db / 20)
    return clip_audio.astype(np.float32)

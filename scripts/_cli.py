"""The scripts' common entry point: errors as one sentence, Ctrl-C as one line, a debug switch.

    from _cli import run_script

    if __name__ == "__main__":
        run_script(main, required=("config", "workdir"), resumable=True)

Every error a user can cause is printed as `error: <sentence>` on stderr, without a
traceback. Exit codes: 2 for flag and config problems (flag misuse, e.g. an unknown or missing
flag, also prints the script's usage after the sentence), 1 for problems of the run itself,
130 for Ctrl-C. Set the environment variable IEKD_DEBUG=1 to get the full traceback instead.

Flag misuse, a missing config file and unknown `--config.*` keys are found before the config
file is loaded, hence before TensorFlow is imported (the configs import iekd_keras, which
imports Keras); this module sits beside the scripts, outside iekd_keras, for the same reason.
"""

import difflib
import importlib.machinery
import importlib.util
import os
import re
import sys
import traceback
from functools import partial
from pathlib import Path

from absl import app, flags
from ml_collections import ConfigDict
from ml_collections.config_flags import config_flags  # its parser and error classes

FLAGS = flags.FLAGS
DEBUG_VARIABLE = "IEKD_DEBUG"
RUN_ERROR, USAGE_ERROR, INTERRUPTED = 1, 2, 130
# Longer messages (a framework's shape dump, say) are cut; IEKD_DEBUG=1 shows them whole.
MAX_MESSAGE_CHARS = 800


class FlagMisuse(Exception):
    """A flag that is unknown, missing or malformed: the script's usage follows the message."""


class BadConfig(Exception):
    """A config file or `--config.*` override that cannot be used."""


def run_script(main, required=(), resumable=False, positional=False):
    """Runs an absl `main` with every error reported as one sentence (see the module doc).

    Args:
        main: the script's `main(argv)`.
        required: names of flags that must be given.
        resumable: Ctrl-C says that running the same command again resumes.
        positional: whether the script takes arguments other than flags.
    """
    parser = partial(parse_flags, required=tuple(required), positional=positional)
    try:
        app.run(main, flags_parser=parser)
    except SystemExit:
        raise
    except BaseException as error:
        if debugging():
            raise
        try:
            code = report(error, resumable)
        except Exception:  # noqa: BLE001 - reporting must not end in a traceback itself
            sys.stderr.write(f"error: {type(error).__name__}: {' '.join(str(error).split())}\n")
            code = RUN_ERROR
        sys.exit(code)


def debugging():
    """Whether IEKD_DEBUG asks for full tracebacks."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def report(error, resumable=False):
    """Writes one line about `error` to stderr (plus the usage after flag misuse); returns the
    exit code."""
    if isinstance(error, KeyboardInterrupt):
        where = str(error) or "Interrupted"
        hint = (
            "; run the same command again to resume from the last whole epoch."
            if resumable
            else "."
        )
        sys.stderr.write(f"{where}{hint}\n")
        return INTERRUPTED
    sys.stderr.write(f"error: {sentence(error)}\n")
    if isinstance(error, FlagMisuse):
        sys.stderr.write("\n")
        app.usage(shorthelp=True)
        return USAGE_ERROR
    return USAGE_ERROR if _is_config_error(error) else RUN_ERROR


def sentence(error):
    """The error's message on one line; an unexpected kind of error is named, with the hint
    to set IEKD_DEBUG=1."""
    text = " ".join(str(error).split())
    if _is_deliberate(error):
        if len(text) > MAX_MESSAGE_CHARS:
            text = f"{text[:MAX_MESSAGE_CHARS]}... (set {DEBUG_VARIABLE}=1 for the whole message)"
        return text or type(error).__name__
    first_line = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    first_line = first_line[:MAX_MESSAGE_CHARS]
    return (
        f"{type(error).__name__}{': ' + first_line if first_line else ''} "
        f"(set {DEBUG_VARIABLE}=1 to see the traceback)."
    )


def _is_config_error(error):
    config_validation = sys.modules.get("iekd_keras.experiment.config_checks")
    config_error = getattr(config_validation, "ConfigError", BadConfig)
    return isinstance(error, BadConfig | config_error)


def _is_deliberate(error):
    """Errors the project raises on purpose (their messages are written for users)."""
    if isinstance(error, FlagMisuse | BadConfig | ValueError | OSError):
        return True
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    raised_in = Path(frames[-1].filename).resolve()
    return any(raised_in.is_relative_to(directory) for directory in _project_directories())


def _project_directories():
    """The scripts' directory and, once imported, the iekd_keras package's."""
    directories = [Path(__file__).resolve().parent]
    package = sys.modules.get("iekd_keras")
    if getattr(package, "__file__", None):
        directories.append(Path(package.__file__).resolve().parent)
    return directories


# ---------------------------------------------------------------------------- flag parsing


def parse_flags(argv, required=(), positional=False):
    """absl's flag parsing, in the order that finds cheap mistakes before the config loads.

    1. Every flag but the config ones: unknown or malformed flags, missing required flags.
    2. The config file exists, and each `--config.<key>` names a key of the base config.
    3. The config file loads, and each override names one of its keys.
    4. absl/ml_collections parse everything (override values of the wrong type).
    """
    argv = FLAGS.read_flags_from_files(argv, force_gnu=False)
    config_flag = _config_flag_name()
    config_arg, overrides, others = _split_config_arguments(argv, config_flag)
    remaining = _parse_plain_flags(others, required, positional, config_flag)
    if config_flag is None or config_arg is None:  # nothing left to parse
        if config_flag in required:
            example = f"--{config_flag}=configs/quickstart.py"
            raise FlagMisuse(f"The flag --{config_flag} is required (e.g. {example}).")
        if overrides:
            path = overrides[0][0]
            raise FlagMisuse(f"--{config_flag}.{path} is given without --{config_flag}=<file>.")
        return remaining
    FLAGS.unparse_flags()  # parsed again below, with the config
    path, separator, variant = config_arg.partition(":")
    if not Path(path).is_file():
        what = "is a directory, not a config file" if Path(path).is_dir() else "does not exist"
        raise BadConfig(f"The config file {path!r} (from --{config_flag}) {what}.")
    reference = _base_config_keys()
    if reference is not None:
        _check_override_keys(overrides, reference, config_flag)
    config = _load_config(path, (variant,) if separator else ())
    _check_override_keys(overrides, set(_flat_keys(config)), config_flag)
    try:
        return FLAGS(argv)
    except Exception as error:
        problem = _override_error(error, config, overrides, config_flag)
        if problem is error:
            raise
        raise problem from error


def _config_flag_name():
    names = [
        name for name in FLAGS if isinstance(FLAGS[name].parser, config_flags.ConfigFileFlagParser)
    ]
    return names[0] if names else None


def _split_config_arguments(argv, name):
    """(the config flag's value or None, [(override key, token)], every other argument)."""
    if name is None:
        return None, [], list(argv)
    pattern = re.compile(rf"--?(no)?{re.escape(name)}(\.[^=]+)?(=.*)?", re.DOTALL)
    config_arg, overrides, others = None, [], [argv[0]]
    index = 1
    while index < len(argv):
        token = argv[index]
        match = pattern.fullmatch(token)
        if token == "--" or not match:
            if token == "--":
                others += argv[index:]
                break
            others.append(token)
            index += 1
            continue
        negated, key, value = match.groups()
        takes_next = value is None and not negated and index + 1 < len(argv)
        takes_next = takes_next and not argv[index + 1].startswith("-")
        if value is None and takes_next:
            value, index = "=" + argv[index + 1], index + 1
        if key and config_arg is None:
            raise BadConfig(
                f"{token} comes before --{name}=<file>; give --{name} first, as the overrides "
                "change the config it loads."
            )
        if key:
            overrides.append((key[1:], token if not takes_next else f"{token} {value[1:]}"))
        elif value is not None:
            config_arg = value[1:]
        index += 1
    return config_arg, overrides, others


def _parse_plain_flags(args, required, positional, config_flag):
    """Parses every flag but the config ones, which need the config file loaded."""
    try:
        remaining = FLAGS(args)
    except flags.Error as error:
        raise FlagMisuse(_flag_message(error)) from error
    missing = [name for name in required if name != config_flag and FLAGS[name].value is None]
    if missing:
        raise FlagMisuse(f"The flag --{missing[0]} is required.")
    if remaining[1:] and not positional:
        raise FlagMisuse(
            f"Unexpected argument {remaining[1]!r}: this script takes only flags (--name=value)."
        )
    return remaining


def _flag_message(error):
    """absl's 'flag --name=value: problem' as '--name=value: problem.'"""
    text = " ".join(str(error).split())
    text = text.removeprefix("flag ")
    return text if text.endswith((".", "?")) else f"{text}."


def _base_config_keys():
    """Keys of iekd_keras.experiment.recipes.base_config(), read without importing iekd_keras (and
    so Keras): recipes.py imports only ml_collections at module level. None if it cannot be read."""
    try:
        package = importlib.util.find_spec("iekd_keras")
        package_root = Path(next(iter(package.submodule_search_locations)))
        location = package_root / "experiment" / "recipes.py"
        loader = importlib.machinery.SourceFileLoader("_iekd_recipes_keys", str(location))
        module = importlib.util.module_from_spec(
            importlib.util.spec_from_loader(loader.name, loader)
        )
        loader.exec_module(module)
        return set(_flat_keys(module.base_config()))
    except Exception:  # noqa: BLE001 - the check after loading the config still runs
        return None


def _flat_keys(config, prefix=""):
    """Every key path of a ConfigDict, groups included: 'distiller', 'distiller.p', ..."""
    for key, value in config.items():
        yield f"{prefix}{key}"
        if isinstance(value, ConfigDict | dict):
            yield from _flat_keys(value, f"{prefix}{key}.")


def _check_override_keys(overrides, keys, config_flag):
    for key, _ in overrides:
        if key not in keys:
            raise BadConfig(_unknown_key_message(key, keys, config_flag))


def _unknown_key_message(key, keys, config_flag):
    """'Unknown config key ... Did you mean ...?': difflib over the keys of the deepest group
    the key names correctly, else over every key path; else the keys of that group."""
    message = f"Unknown config key {key!r} (from --{config_flag}.{key})."
    group = key.rpartition(".")[0]
    while group and group not in keys:
        group = group.rpartition(".")[0]
    prefix = f"{group}." if group else ""
    siblings = sorted(k.removeprefix(prefix) for k in keys if k.rpartition(".")[0] == group)
    rest = key.removeprefix(prefix)
    if "." in rest:
        close = difflib.get_close_matches(key, sorted(keys), n=1)
    else:
        close = [prefix + name for name in difflib.get_close_matches(rest, siblings, n=1)]
    if close:
        return f"{message} Did you mean {close[0]!r}?"
    where = f"keys of {group!r}" if group else "top-level keys"
    return f"{message} The {where} are: {', '.join(siblings)}."


def _load_config(path, args):
    """The config file's `get_config(*args)`, with a failure told in one sentence."""
    name = f"_iekd_config_{abs(hash(path))}"
    loader = importlib.machinery.SourceFileLoader(name, path)
    try:
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
        loader.exec_module(module)
        get_config = getattr(module, "get_config", None)
        if not callable(get_config):
            raise BadConfig(f"The config file {path!r} defines no get_config() function.")
        config = get_config(*args)
    except BadConfig:
        raise
    except Exception as error:  # noqa: BLE001 - the user's file may raise anything
        raise BadConfig(_config_failure(path, args, error)) from error
    if not isinstance(config, ConfigDict):
        raise BadConfig(
            f"The config file {path!r} returns {type(config).__name__} from get_config(); "
            "expected an ml_collections.ConfigDict."
        )
    return config


# What a locked, type-safe ConfigDict (recipes.base_config()) says when a config file sets a key
# it does not have, or a value of another type.
_LOCKED_KEY = re.compile(r'Key "(?P<key>[^"]+)" does not exist and cannot be added')
_SUGGESTION = re.compile(r'Did you mean "(?P<close>[^"]+)" instead of')
_CAST = re.compile(
    r"Could not override field '(?P<key>[^']+)' \(reference\)\. (?P<value>.*) is of original "
    r"type <class '(?P<got>[^']+)'> and cannot be casted to type <class '(?P<want>[^']+)'>"
)


def _config_failure(path, args, error):
    message = " ".join(str(error).split()).rstrip(".")
    if isinstance(error, SyntaxError):
        return f"The config file {path!r} has a syntax error at line {error.lineno}: {error.msg}."
    called = f"get_config({', '.join(map(repr, args))})"
    if isinstance(error, ValueError):  # a config's own refusal, e.g. an unknown variant
        return f"The config file {path!r} refuses {called}: {message}."
    lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if _same_file(f, path)]
    where = f" at line {lines[-1]}" if lines else ""
    unknown, cast = _LOCKED_KEY.search(message), _CAST.search(message)
    if isinstance(error, AttributeError | KeyError) and unknown:
        close = _SUGGESTION.search(message)
        hint = f" Did you mean {close['close']!r}?" if close else ""
        return (
            f"The config file {path!r} sets the unknown config key {unknown['key']!r}{where} "
            f"in {called}: its config has no such key.{hint}"
        )
    if isinstance(error, TypeError) and cast:
        got, want = (cast[name].rpartition(".")[-1] for name in ("got", "want"))
        value = repr(cast["value"]) if got == "str" else cast["value"]
        return (
            f"The config file {path!r} sets config key {cast['key']!r} to {value} ({got})"
            f"{where} in {called}; expected {want}."
        )
    return f"The config file {path!r} fails{where} in {called}: {type(error).__name__}: {message}."


def _same_file(frame, path):
    try:
        return Path(frame.filename).resolve() == Path(path).resolve()
    except OSError:
        return False


def _override_error(error, config, overrides, config_flag):
    """absl/ml_collections' parse errors of the overrides, as one sentence."""
    text = " ".join(str(error).split())
    for key, token in overrides:
        prefix = f"flag --{config_flag}.{key}="
        if text.startswith(prefix):
            detail = text[len(prefix) :].split(": ", 1)[-1].rstrip(".")
            current, expected = _value_at(config, key), _type_at(config, key)
            like = f" like the config's {current!r}" if current is not None else ""
            return BadConfig(
                f"Bad value in {token}: expected {expected.__name__}{like} ({detail})."
            )
    if isinstance(error, config_flags.UnsupportedOperationError):
        for key, token in overrides:
            if _type_at(config, key) is type(None):
                return BadConfig(
                    f"{token} cannot be applied: config.{key} is None in the config file, so "
                    "the command line cannot know its type; declare it there as "
                    "ml_collections.config_dict.placeholder(<type>)."
                )
    if isinstance(error, flags.Error | AttributeError | KeyError | TypeError | ValueError):
        return BadConfig(f"The config overrides cannot be applied: {text}")
    return error


def _value_at(config, key):
    for part in key.split("."):
        config = config.get(part) if isinstance(config, ConfigDict | dict) else None
    return config


def _type_at(config, key):
    """The type of the config's `key`: a typed placeholder's (`placeholder(float)`) when unset."""
    group, _, name = key.rpartition(".")
    parent = _value_at(config, group) if group else config
    if isinstance(parent, ConfigDict) and name in parent:
        return parent.get_type(name)
    return type(_value_at(config, key))

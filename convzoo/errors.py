"""Errors a user can cause and fix. `convzoo.cli.main` prints their message and exits with 2."""


class ConvzooError(Exception):
    """A mistake the user can correct; the message says what was wrong and what to do."""


class UnknownModelError(ConvzooError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelNotInStoreError(ConvzooError):
    """The registry knows the model but no store holds a trained, exported copy."""


class IntegrityError(ConvzooError):
    """A stored file does not match its manifest (sha256) or is not a valid model."""


class DataNotFoundError(ConvzooError):
    """A data set is not where convzoo looked."""


class BadInputError(ConvzooError, ValueError):
    """An input (image, tensor, setting) cannot be used; the message says why."""


class EntryError(ConvzooError, ValueError):
    """A registry entry (or a manifest's copy of one) breaks the entry schema; the message names the field."""

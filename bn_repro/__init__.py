"""bn_repro: a JAX/Flax reproduction of Ioffe & Szegedy (2015), Batch Normalization."""

import os

# The experiment configs live in configs/ at the top of the repository and are imported
# as bn_repro.configs, a name no other project can take. An install copies configs/
# into the package (pyproject.toml's package-dir); a source checkout or an editable
# install copies nothing, so bn_repro then also looks for its subpackages in the
# checkout's root, where configs/ is.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not os.path.isdir(os.path.join(__path__[0], "configs")) and os.path.isfile(
    os.path.join(_CHECKOUT, "configs", "__init__.py")
):
    __path__.append(_CHECKOUT)

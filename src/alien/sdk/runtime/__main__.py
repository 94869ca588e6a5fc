"""``python -m alien.sdk.runtime``: run one function (see ``alien.sdk.runtime.main``)."""

from alien.sdk.runtime.main import main

main()

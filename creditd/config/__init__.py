"""The configuration: one module per concern, each importing only those below it (types <- limits,
fronts, diameter, payments <- plans <- rating <- settings). Import a name from the module that
defines it; this package re-exports nothing."""

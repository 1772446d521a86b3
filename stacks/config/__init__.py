"""Reading and validating a stack's Pulumi config: the lowest layer of stacks/, importing no component.

`settings.load()` is the one entry: it reads every key through `reader.Reader` (errors name the full
key), checks it against the providers' limits (`limits`), and returns the typed `model.Settings`
that the stack classes and their components consume. One module per concern of the settings: the
user's bot (`bot`), the bot control channel (`channel`), phone calls (`phone`), the warm reserve
(`reserve`), the coordination store (`store`), the TURN relay (`turn`).
"""

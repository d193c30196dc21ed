"""Pure evaluation and decision logic: no I/O, no clock, no globals."""

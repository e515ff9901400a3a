"""verl integration: the SRFT trainer (V1 phase methods), the ``srft_agent`` agent loop, the launch-time checks
shared with the dry run, the refused verl settings, mixed data sources, the watchdog, and the SFT stage."""

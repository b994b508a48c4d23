"""earthvec user interfaces: the command line (``app.cli``) and the Streamlit explorer."""

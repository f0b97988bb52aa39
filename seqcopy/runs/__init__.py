"""The shared queue: the store's tables, the store, the workers that claim and train its runs (also
as Ray actors), and what each worker can serve. Imports core and the base, never the results, the
command line or the pages."""

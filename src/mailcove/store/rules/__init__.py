"""The store's rules, written once for every backend (docs/architecture.md section 3, "The
store's rules once").

Each MailStore verb that reads or writes the database is a sans-IO rule here (store/sansio.py):
accounts.py, mailboxes.py, messages.py, queue.py and leases.py decide and raise; they yield the
typed statements of statements.py, which each backend runs in its own SQL with its own driver.
Nothing in this package does I/O or knows which database it is talking to.
"""

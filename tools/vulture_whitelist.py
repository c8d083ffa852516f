"""What vulture cannot see being used, for `vulture src/mailcove tools/vulture_whitelist.py
--min-confidence 60` (`make lint`), which then prints nothing: every other unused name in src/ is
dead code to delete, not to list here. Each group says why its names are used. Vulture only
parses this file (db_copy.copy_cmd would not resolve at run time); the names go through their
real modules so a reader finds each at once."""

# ruff: noqa: B018

import dns.asyncresolver

from mailcove.cli import access, alias, db_copy, domain, index, queue, relay, user
from mailcove.directory import pam_auth
from mailcove.directory import postgres as directory_postgres
from mailcove.directory import rules as directory_rules
from mailcove.directory import sql as directory_sqlite
from mailcove.imap.search import Light
from mailcove.message import text as message_text
from mailcove.net.control import ControlClient
from mailcove.proto.imap.commands.append import AppendStart
from mailcove.proto.imap.seqset import SeqSet
from mailcove.proto.pop3 import sasl as pop3_sasl
from mailcove.queue.runner import QueueRunner
from mailcove.store.postgres import driver as postgres_driver
from mailcove.store.postgres import statements as postgres_store
from mailcove.store.rules import statements as store_rules
from mailcove.store.sqlite import statements as sqlite_store

# click registers these commands with their group by decorator (@user.command("passwd"), and
# db_copy.register's @group.command("copy")); `mailcove user passwd` etc. call them.
access.import_
alias.list_
db_copy.copy_cmd  # defined inside db_copy.register(group), so this line only names it
domain.list_
index.rebuild
index.status
queue.list_
queue.retry
relay.deny
relay.list_
user.passwd
user.list_
user.disable

# Statement handlers: @on(S.Statement) puts each into its backend's HANDLERS table, which the
# drivers look statements up in (store/sansio.py); tests/store/test_statement_tables.py checks
# every statement the rules can yield has one in each table.
sqlite_store._space_low
sqlite_store._insert_account
sqlite_store._lock_account
sqlite_store._lock_account_of
sqlite_store._mailbox_account
sqlite_store._delete_account
sqlite_store._set_quota
sqlite_store._charge_account
sqlite_store._next_uidvalidity
sqlite_store._raise_last_uidvalidity
sqlite_store._account_exists
sqlite_store._account_names
sqlite_store._account_usage
sqlite_store._account_quota
sqlite_store._find_mailbox
sqlite_store._insert_mailbox
sqlite_store._revive_mailbox
sqlite_store._lock_mailboxes
sqlite_store._lock_mailbox
sqlite_store._account_mailboxes
sqlite_store._inferiors
sqlite_store._rename_mailbox
sqlite_store._set_subscribed
sqlite_store._make_noselect
sqlite_store._delete_mailbox
sqlite_store._reset_uidvalidity
sqlite_store._clear_expunged
sqlite_store._adjust_mailbox
sqlite_store._allocate_uids
sqlite_store._mailboxes
sqlite_store._mailbox_by_name
sqlite_store._mailbox_by_id
sqlite_store._mailbox_states
sqlite_store._expunged_records
sqlite_store._expunged_since
sqlite_store._add_body
sqlite_store._add_blob_refs
sqlite_store._release_blobs
sqlite_store._insert_messages
sqlite_store._copy_messages
sqlite_store._message_uids
sqlite_store._message_rows
sqlite_store._message_flags
sqlite_store._set_flags
sqlite_store._delete_messages
sqlite_store._delete_all_messages
sqlite_store._record_expunged
sqlite_store._present_uids
sqlite_store._index
sqlite_store._message_metas
sqlite_store._message_slice
sqlite_store._served_messages
sqlite_store._message_path
sqlite_store._stored_messages
sqlite_store._pop3_uidls
sqlite_store._insert_queue_entry
sqlite_store._delete_queue_entry
sqlite_store._claim_recipients
sqlite_store._record_attempts
sqlite_store._queue_pending
sqlite_store._queue_exists
sqlite_store._retry_recipients
sqlite_store._queue_entries
sqlite_store._queue_recipients
sqlite_store._queue_ids_after
sqlite_store._queue_message
sqlite_store._queue_size
sqlite_store._acquire_lease
sqlite_store._renew_lease
sqlite_store._release_lease
sqlite_store._unindexed_bodies
sqlite_store._index_texts
sqlite_store._text_candidates
sqlite_store._index_progress
sqlite_store._reset_index

postgres_store._space_low
postgres_store._insert_account
postgres_store._lock_account
postgres_store._lock_account_of
postgres_store._mailbox_account
postgres_store._delete_account
postgres_store._set_quota
postgres_store._charge_account
postgres_store._next_uidvalidity
postgres_store._raise_last_uidvalidity
postgres_store._account_exists
postgres_store._account_names
postgres_store._account_usage
postgres_store._account_quota
postgres_store._find_mailbox
postgres_store._insert_mailbox
postgres_store._revive_mailbox
postgres_store._lock_mailboxes
postgres_store._lock_mailbox
postgres_store._account_mailboxes
postgres_store._inferiors
postgres_store._rename_mailbox
postgres_store._set_subscribed
postgres_store._make_noselect
postgres_store._delete_mailbox
postgres_store._reset_uidvalidity
postgres_store._clear_expunged
postgres_store._adjust_mailbox
postgres_store._allocate_uids
postgres_store._mailboxes
postgres_store._mailbox_by_name
postgres_store._mailbox_by_id
postgres_store._mailbox_states
postgres_store._expunged_records
postgres_store._expunged_since
postgres_store._add_body
postgres_store._add_blob_refs
postgres_store._release_blobs
postgres_store._insert_messages
postgres_store._pop3_uidls
postgres_store._copy_messages
postgres_store._message_uids
postgres_store._message_rows
postgres_store._message_flags
postgres_store._set_flags
postgres_store._delete_messages
postgres_store._delete_all_messages
postgres_store._record_expunged
postgres_store._present_uids
postgres_store._index
postgres_store._message_metas
postgres_store._message_slice
postgres_store._served_messages
postgres_store._message_path
postgres_store._stored_messages
postgres_store._insert_queue_entry
postgres_store._delete_queue_entry
postgres_store._claim_recipients
postgres_store._record_attempts
postgres_store._queue_pending
postgres_store._queue_exists
postgres_store._retry_recipients
postgres_store._queue_entries
postgres_store._queue_recipients
postgres_store._queue_ids_after
postgres_store._queue_message
postgres_store._queue_size
postgres_store._acquire_lease
postgres_store._renew_lease
postgres_store._release_lease
postgres_store._unindexed_bodies
postgres_store._index_texts
postgres_store._text_candidates
postgres_store._index_progress
postgres_store._reset_index

directory_sqlite._all_domains
directory_sqlite._all_users
directory_sqlite._all_aliases
directory_sqlite._all_rules
directory_sqlite._primary_domain
directory_sqlite._insert_domain
directory_sqlite._domain_use
directory_sqlite._delete_domain
directory_sqlite._has_user
directory_sqlite._insert_user
directory_sqlite._set_password
directory_sqlite._set_disabled
directory_sqlite._delete_user
directory_sqlite._user_list
directory_sqlite._alias_targets
directory_sqlite._add_alias_target
directory_sqlite._last_alias_position
directory_sqlite._delete_alias
directory_sqlite._delete_all_rules
directory_sqlite._last_rule_position
directory_sqlite._rule_by_key
directory_sqlite._update_rule
directory_sqlite._insert_rule
directory_sqlite._delete_rule
directory_sqlite._dump_table
directory_sqlite._load_rows
directory_sqlite._is_empty

directory_postgres._all_domains
directory_postgres._all_users
directory_postgres._all_aliases
directory_postgres._all_rules
directory_postgres._primary_domain
directory_postgres._insert_domain
directory_postgres._domain_use
directory_postgres._delete_domain
directory_postgres._has_user
directory_postgres._insert_user
directory_postgres._set_password
directory_postgres._set_disabled
directory_postgres._delete_user
directory_postgres._user_list
directory_postgres._alias_targets
directory_postgres._add_alias_target
directory_postgres._last_alias_position
directory_postgres._delete_alias
directory_postgres._delete_all_rules
directory_postgres._last_rule_position
directory_postgres._rule_by_key
directory_postgres._update_rule
directory_postgres._insert_rule
directory_postgres._delete_rule
directory_postgres._dump_table
directory_postgres._load_rows
directory_postgres._is_empty

# The rules' statement vocabularies (statements_of(globals())): what
# tests/store/test_statement_tables.py checks each backend's HANDLERS against.
store_rules.STATEMENTS
directory_rules.STATEMENTS

# libpam's item and message-style numbers (<security/_pam_types.h>), kept beside the ones used so
# the table reads as the header does.
pam_auth.PAM_ERROR_MSG
pam_auth.PAM_TEXT_INFO
pam_auth.PAM_SERVICE
pam_auth.PAM_USER
pam_auth.PAM_TTY

# Read through getattr with a name from a table (Light.field: _LIGHT_FIELDS, Light.address_field:
# _ADDRESS_FIELDS), so SEARCH FROM/TO/CC/BCC and the Date header compare them.
Light.env_date
Light.addr_from
Light.addr_to
Light.addr_cc
Light.addr_bcc

# html.parser.HTMLParser calls its subclass's handlers (message.text: HTML parts reduced to text
# for the full-text index).
message_text._HtmlText.handle_starttag
message_text._HtmlText.handle_endtag
message_text._HtmlText.handle_data

# dnspython reads the attribute we set (the whole-lookup deadline).
dns.asyncresolver.Resolver.lifetime

# Used only by tests, on purpose: the other half of a protocol the server speaks, or an event
# field / counter a test asserts on. Each pins live server behaviour:
ControlClient.ping  # the control socket's PING verb (tests/smtp/test_local_injection.py)
pop3_sasl.plain_message  # the client side of SASL PLAIN (tests/pop3, tests/proto/pop3)
SeqSet.from_ints  # the sequence-set fuzz tests build sets from numbers (tests/proto/imap)
SeqSet.has_star  # tests/proto/imap/test_improto_responses.py
AppendStart.synchronizing  # part of the event's value: tests compare whole AppendStart events
QueueRunner.wait_idle  # tests wait for the deliveries the runner spawned (tests/queue)
postgres_driver.DeliveryBatcher.batches  # tests/store/test_postgres_nodes.py: deliveries were grouped

-- Login roles for a local server with trust authentication (tests, the
-- contract run, benchmarks), one in each group role that the first migration
-- creates for row-level security. A production setup creates its own login
-- roles, with passwords, in the same groups.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'countersign_test_api') THEN
        CREATE ROLE countersign_test_api LOGIN IN ROLE countersign_api;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'countersign_test_worker') THEN
        CREATE ROLE countersign_test_worker LOGIN IN ROLE countersign_worker;
    END IF;
END
$$;

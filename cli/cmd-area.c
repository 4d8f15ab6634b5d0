#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hvpatch/area-config.h>

#include "cli/commands.h"
#include "cli/patching.h"

static const char help[] =
        "Manages the domain's own read-only patch area, where redirect code goes with\n"
        "apply --area device (docs/operations.md, docs/security.md):\n"
        "  add DOMAIN     create STATE_DIR/areas/UUID.area (2 MiB, root, 0644) and add it\n"
        "                 to the domain's persistent definition as a read-only nvdimm\n"
        "                 (<qemu:commandline>, <maxMemory>, a NUMA cell). Takes effect at\n"
        "                 the domain's next boot (a shutdown and start, not a reboot\n"
        "                 from inside). The guest can execute the area but not write it.\n"
        "  remove DOMAIN  take it out of the definition (from the next boot on); the file\n"
        "                 is deleted now if the domain is not running.\n"
        "  show DOMAIN    whether it is configured, its file, and where the running\n"
        "                 instance has it.\n";

static void print(struct cli *c, const char *action, const struct hvp_area_config *a)
{
        if (c->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "domain", json_object_new_string(a->domain));
                json_object_object_add(o, "uuid", json_object_new_string(a->uuid));
                json_object_object_add(o, "action", json_object_new_string(action));
                json_object_object_add(o, "changed", json_object_new_boolean(a->changed));
                json_object_object_add(o, "configured", json_object_new_boolean(a->configured));
                json_object_object_add(o, "kind", json_object_new_string("nvdimm"));
                json_object_object_add(o, "file", a->path[0] ? json_object_new_string(a->path) : NULL);
                json_object_object_add(o, "file_ok", json_object_new_boolean(a->file_ok));
                json_object_object_add(o, "running", json_object_new_boolean(a->running));
                json_object_object_add(o, "active", json_object_new_boolean(a->active));
                json_object_object_add(o, "gpa", a->active ? cli_json_addr(a->gpa) : NULL);
                json_object_object_add(o, "size", a->active ? json_object_new_int64((int64_t)a->size) : NULL);
                json_object_object_add(o, "effective_at_next_boot",
                                       json_object_new_boolean(a->changed && a->running));
                json_object_object_add(o, "legacy_shmem", json_object_new_boolean(a->legacy_shmem));
                json_object_object_add(o, "legacy_shared_name", json_object_new_boolean(a->legacy_shared_name));
                cli_json_print(o);
                return;
        }
        printf("domain:      %s (%s)\n", a->domain, a->uuid);
        printf("configured:  %s%s\n", a->configured ? "yes, read-only nvdimm" : "no",
               a->changed ? (strcmp(action, "add") == 0 ? " (added now)" : " (removed now)") : "");
        if (a->path[0])
                printf("file:        %s%s\n", a->path, a->file_ok ? "" : " (MISSING OR NOT ROOT-OWNED 0644, 2 MiB)");
        if (a->active)
                printf("running:     yes, at guest-physical 0x%llx (%llu bytes)\n", (unsigned long long)a->gpa,
                       (unsigned long long)a->size);
        else
                printf("running:     %s\n", a->running ? "yes, without the area" : "no");
        if (a->changed && a->running)
                printf("note:        takes effect at the domain's next boot (shut it down and start it)\n");
        if (a->legacy_shmem)
                printf("note:        the domain also has a deprecated <shmem> patch area%s\n",
                       a->legacy_shared_name ? " with a NAME SHARED with other domains: remove it" : "");
}

int cmd_area(struct cli *c, int argc, char **argv)
{
        struct hvp_area_config a;
        const char *action;
        int r;

        if (cli_wants_help(c, "area", argc, argv, help))
                return EXIT_OK;
        if (argc != 2)
                return cli_usage(c, cli_find_command("area"));
        action = argv[0];
        if (strcmp(action, "add") == 0)
                r = hvp_area_config_add(c->uri, argv[1], cli_state_dir(), &a);
        else if (strcmp(action, "remove") == 0)
                r = hvp_area_config_remove(c->uri, argv[1], &a);
        else if (strcmp(action, "show") == 0)
                r = hvp_area_config_show(c->uri, argv[1], &a);
        else
                return cli_usage(c, cli_find_command("area"));
        if (r < 0)
                return cli_lib_error(c, r, action);
        print(c, action, &a);
        return EXIT_OK;
}

/*
 * The records travel with the guest (include/hvpatch/ops.h): a copy of the domain's
 * record in its live libvirt metadata, so that save/restore, managedsave and migration
 * carry it. The element of HVP_METADATA_NS may already hold what the operator put there
 * (<hvpatch:group>, <hvpatch:os>: the policy reads them with //hvp:group): libvirt keeps
 * one element per namespace, so ours is a wrapper that keeps whatever was there:
 *
 *   <hvpatch:state xmlns:hvpatch="urn:hvpatch:libvirt-metadata:1">
 *     <hvpatch:group>web</hvpatch:group>            (kept as found)
 *     <hvpatch:records version="1">{ the record's JSON }</hvpatch:records>
 *   </hvpatch:state>
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <hvpatch/ops.h>

#include "common/error.h"
#include "common/util.h"
#include "patcher/record.h"
#include "patcher/retire.h"

#define PREFIX "hvpatch"

/*
 * libvirt hands the element back without its namespace (it selected it by namespace)
 * and puts every element we give it into the namespace: names alone say what is ours.
 */
static bool is_ours(const xmlNode *n, const char *name)
{
        return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlDoc *parse(const char *xml)
{
        size_t len = strlen(xml);

        if (len > HVP_METADATA_RECORDS_MAX + 65536)
                return NULL;
        return xmlReadMemory(xml, (int)len, "metadata.xml", NULL,
                             XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

int hvp_record_publish(struct hvp_guest *g, const struct hvp_record *rec)
{
        char *old = NULL;
        xmlDoc *doc = NULL, *prev = NULL;
        xmlNode *root, *records;
        xmlChar *out = NULL;
        json_object *o;
        const char *text;
        bool too_big;
        int r;

        r = hvp_guest_get_metadata(g, HVP_METADATA_NS, &old);
        if (r < 0)
                return r;
        o = hvp_record_to_json(rec);
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        /* Too large: no copy at all rather than a stale one (the local record stays). */
        too_big = strlen(text) > HVP_METADATA_RECORDS_MAX;
        doc = xmlNewDoc(BAD_CAST "1.0");
        root = doc ? xmlNewNode(NULL, BAD_CAST "state") : NULL;
        if (!root) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        xmlDocSetRootElement(doc, root);
        /* Keep what was there: the operator's elements, or the children of our wrapper. */
        prev = old ? parse(old) : NULL;
        if (prev) {
                xmlNode *top = xmlDocGetRootElement(prev);

                if (is_ours(top, "state")) {
                        for (xmlNode *n = top->children; n; n = n->next)
                                if (n->type == XML_ELEMENT_NODE && !is_ours(n, "records"))
                                        xmlAddChild(root, xmlDocCopyNode(n, doc, 1));
                } else if (top) {
                        xmlAddChild(root, xmlDocCopyNode(top, doc, 1));
                }
        }
        records = too_big ? NULL : xmlNewChild(root, NULL, BAD_CAST "records", NULL);
        if (records) {
                xmlNewProp(records, BAD_CAST "version", BAD_CAST "1");
                xmlNodeAddContent(records, BAD_CAST text);
        } else if (!too_big) {
                r = hvp_fail(-ENOMEM, "out of memory");
                goto out;
        }
        {
                xmlBuffer *buf = xmlBufferCreate();

                if (!buf || xmlNodeDump(buf, doc, root, 0, 0) < 0) {
                        xmlBufferFree(buf);
                        r = hvp_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                out = xmlStrdup(xmlBufferContent(buf));
                xmlBufferFree(buf);
        }
        r = out ? hvp_guest_set_metadata(g, HVP_METADATA_NS, PREFIX, (const char *)out)
                : hvp_fail(-ENOMEM, "out of memory");
        if (r == 0 && too_big)
                r = hvp_fail(-E2BIG, "the record (%zu bytes) is larger than the metadata's bound of %u: not copied",
                             strlen(text), HVP_METADATA_RECORDS_MAX);
out:
        xmlFree(out);
        xmlFreeDoc(prev);
        xmlFreeDoc(doc);
        json_object_put(o);
        free(old);
        return r;
}

int hvp_record_from_metadata(struct hvp_guest *g, struct hvp_record **ret)
{
        char *xml = NULL;
        xmlDoc *doc = NULL;
        xmlNode *top, *records = NULL;
        xmlChar *text = NULL;
        json_object *o = NULL;
        json_tokener *tok = NULL;
        int r;

        r = hvp_guest_get_metadata(g, HVP_METADATA_NS, &xml);
        if (r < 0)
                return r;
        *ret = NULL;
        if (!xml)
                return 0;
        doc = parse(xml);
        top = doc ? xmlDocGetRootElement(doc) : NULL;
        for (xmlNode *n = is_ours(top, "state") ? top->children : NULL; n; n = n->next)
                if (is_ours(n, "records"))
                        records = n;
        if (!records)
                goto out;       /* the operator's elements only: nothing carried */
        text = xmlNodeGetContent(records);
        if (!text || strlen((const char *)text) > HVP_METADATA_RECORDS_MAX) {
                r = hvp_fail(-E2BIG, "the records in the domain's metadata are over %u bytes",
                             HVP_METADATA_RECORDS_MAX);
                goto out;
        }
        tok = json_tokener_new_ex(64);
        o = tok ? json_tokener_parse_ex(tok, (const char *)text, (int)strlen((const char *)text)) : NULL;
        if (!o || json_tokener_get_error(tok) != json_tokener_success) {
                r = hvp_fail(-EINVAL, "the records in the domain's metadata are not JSON");
                goto out;
        }
        r = hvp_record_from_json(o, hvp_guest_uuid(g), "the domain's libvirt metadata", ret);
out:
        if (tok)
                json_tokener_free(tok);
        json_object_put(o);
        xmlFree(text);
        xmlFreeDoc(doc);
        free(xml);
        return r;
}

int hvp_record_adopt(struct hvp_guest *g, const struct hvp_kernel *k, const char *state_dir, struct hvp_record *rec,
                     bool *ret_adopted)
{
        struct hvp_record *meta = NULL;
        size_t n = 0;
        int r;

        *ret_adopted = false;
        if (rec->nr_entries || rec->nr_retired)
                return 0;               /* the local record is the truth when it has anything */
        r = hvp_record_from_metadata(g, &meta);
        if (r < 0 || !meta)
                return r == -ENOTSUP ? 0 : r;
        /* Only what memory holds: the metadata is a copy, memory is the evidence. */
        for (size_t i = 0; i < meta->nr_entries; i++) {
                const struct hvp_record_entry *e = &meta->entries[i];
                struct hvp_commit add = { .add = e->plan };

                if (hvp_patch_state(g, NULL, k, e->plan) != HVP_PATCH_APPLIED)
                        continue;
                r = hvp_record_commit(rec, &add, e->pause_ms);
                if (r < 0)
                        goto out;
                rec->entries[rec->nr_entries - 1].applied_at = e->applied_at;
                n++;
        }
        for (size_t i = 0; i < meta->nr_retired; i++) {
                if (!hvp_retired_in_force(g, k, &meta->retired[i], NULL))
                        continue;
                r = hvp_record_add_retired(rec, &meta->retired[i]);
                if (r < 0)
                        goto out;
                n++;
        }
        if (n) {
                r = hvp_record_save(state_dir ? state_dir : HVP_STATE_DIR, rec);
                if (r < 0)
                        goto out;
                hvp_info("%s: %zu record entries adopted from the domain's libvirt metadata", hvp_guest_name(g), n);
                *ret_adopted = true;
        }
        r = 0;
out:
        hvp_record_free(meta);
        return r;
}

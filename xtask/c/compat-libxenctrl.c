/*
 * compat/libxenctrl: libxenctrl's own monitor and mem_access calls on a PV
 * guest, as an introspection tool written against libxenctrl makes them.
 *
 * Usage: compat-libxenctrl DOMID FRAME_RW FRAME_DEFAULT SECONDS
 *
 * Enables the monitor ring (xc_monitor_enable), checks the capabilities and
 * the ring's initial state, binds its event channel, sets the default access
 * rx and FRAME_RW's access rw (machine frames: the _mfn calls), reads them
 * back (the default, FRAME_RW, and FRAME_DEFAULT which must read rx), makes
 * FRAME_DEFAULT r in a batch with FRAME_RW (set_access_multi), reads both
 * back, prints SETUP-DONE, then answers every mem_access event (each frame
 * relaxed to rwx, read back, the vCPU resumed) until the domain shuts down or
 * SECONDS pass; then puts the default back to rwx and disables the ring.  Each step prints a `STEP name ok ...` line or a
 * `STEP name FAIL ...` one; the last line is `SUMMARY ok ...` or
 * `SUMMARY fail`.
 */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xen/vm_event.h>


static xc_interface *xch;
static uint32_t domid;

static const char *access_name(xenmem_access_t access)
{
    static const char *const names[] = {
        "n", "r", "w", "rw", "x", "rx", "wx", "rwx", "rx2rw", "n2rwx",
        "default",
    };

    return access < sizeof(names) / sizeof(names[0]) ? names[access] : "?";
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *step)
{
    printf("STEP %s FAIL errno=%d (%s)\n", step, errno, strerror(errno));
    fflush(stdout);
}

/* A PV guest's frames are machine frames: the _mfn calls. */
static int set_access(xenmem_access_t access, uint64_t mfn, uint32_t nr)
{
    return xc_set_mem_access_mfn(xch, domid, access, mfn, nr);
}

static int set_access_multi(uint8_t *access, uint64_t *mfns, uint32_t nr)
{
    return xc_set_mem_access_multi_mfn(xch, domid, access, mfns, nr);
}

static int get_access(uint64_t mfn, xenmem_access_t *access)
{
    return xc_get_mem_access_mfn(xch, domid, mfn, access);
}

/* Reads a frame's access back; true when it is `want`. */
static bool check_access(const char *step, uint64_t mfn, xenmem_access_t want)
{
    xenmem_access_t access;

    if ( get_access(mfn, &access) )
    {
        fail(step);
        return false;
    }
    printf("STEP %s %s mfn=%#" PRIx64 " access=%s\n", step,
           access == want ? "ok" : "FAIL", mfn, access_name(access));
    return access == want;
}

static bool domain_gone(void)
{
    xc_dominfo_t info;

    return xc_domain_getinfo(xch, domid, 1, &info) != 1 ||
           info.domid != domid || info.shutdown || info.dying;
}

int main(int argc, char *argv[])
{
    uint64_t frame_rw, frame_default;
    double deadline;
    uint32_t port, caps;
    void *ring;
    vm_event_sring_t *sring;
    vm_event_back_ring_t back_ring;
    xenevtchn_handle *xce = NULL;
    xenforeignmemory_handle *fmem;
    xenforeignmemory_resource_handle *fres;
    void *addr = NULL;
    int local_port = -1, rc;
    unsigned int events = 0, resumed = 0;
    bool ok = true;

    if ( argc != 5 )
    {
        fprintf(stderr,
                "usage: %s DOMID FRAME_RW FRAME_DEFAULT SECONDS\n", argv[0]);
        return 2;
    }
    domid = strtoul(argv[1], NULL, 0);
    frame_rw = strtoull(argv[2], NULL, 0);
    frame_default = strtoull(argv[3], NULL, 0);
    deadline = now() + strtod(argv[4], NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    xch = xc_interface_open(NULL, NULL, 0);
    if ( !xch )
    {
        fail("open");
        return 1;
    }

    if ( xc_monitor_get_capabilities(xch, domid, &caps) )
    {
        fail("capabilities");
        return 1;
    }
    printf("STEP capabilities %s caps=%#x mem_access=%d\n",
           (caps & (1u << XEN_DOMCTL_MONITOR_EVENT_MEM_ACCESS)) ? "ok" : "FAIL",
           caps, !!(caps & (1u << XEN_DOMCTL_MONITOR_EVENT_MEM_ACCESS)));

    ring = xc_monitor_enable(xch, domid, &port);
    if ( !ring )
    {
        fail("enable");
        printf("SUMMARY fail\n");
        return 1;
    }
    printf("STEP enable ok port=%u\n", port);

    /* Xen initialised the ring: nothing produced, events wanted at once. */
    sring = ring;
    printf("STEP ring %s req_prod=%u rsp_prod=%u req_event=%u rsp_event=%u\n",
           (sring->req_prod == 0 && sring->rsp_prod == 0 &&
            sring->req_event == 1 && sring->rsp_event == 1) ? "ok" : "FAIL",
           sring->req_prod, sring->rsp_prod, sring->req_event,
           sring->rsp_event);
    ok &= sring->req_prod == 0 && sring->rsp_prod == 0;

    /*
     * The standard route to a resource, xenforeignmemory_map_resource(),
     * maps the same page: Linux maps it in the domain's name, which Xen
     * accepts for the domain's ring page.
     */
    fmem = xenforeignmemory_open(NULL, 0);
    fres = fmem ? xenforeignmemory_map_resource(
                      fmem, domid, XENMEM_resource_vm_event_ring,
                      XEN_DOMCTL_VM_EVENT_OP_MONITOR, 0, 1, &addr,
                      PROT_READ | PROT_WRITE, 0)
                : NULL;
    if ( fres && !memcmp(addr, ring, XC_PAGE_SIZE) )
        printf("STEP map-resource ok\n");
    else if ( fres )
    {
        printf("STEP map-resource FAIL the mapping differs from the ring\n");
        ok = false;
    }
    else
    {
        fail("map-resource");
        ok = false;
    }
    if ( fres )
        xenforeignmemory_unmap_resource(fmem, fres);
    if ( fmem )
        xenforeignmemory_close(fmem);

    xce = xenevtchn_open(NULL, 0);
    local_port = xce ? xenevtchn_bind_interdomain(xce, domid, port) : -1;
    if ( local_port < 0 )
    {
        fail("evtchn");
        ok = false;
        goto disable;
    }
    printf("STEP evtchn ok local=%d\n", local_port);
    BACK_RING_INIT(&back_ring, sring, XC_PAGE_SIZE);

    rc = set_access(XENMEM_access_rx, ~0ull, 0);
    if ( rc )
    {
        fail("set-default");
        ok = false;
        goto disable;
    }
    printf("STEP set-default ok access=rx\n");

    if ( set_access(XENMEM_access_rw, frame_rw, 1) )
    {
        fail("set-frame");
        ok = false;
        goto reset;
    }
    printf("STEP set-frame ok mfn=%#" PRIx64 " access=rw\n", frame_rw);

    ok &= check_access("get-default", ~0ull, XENMEM_access_rx);
    ok &= check_access("get-frame", frame_rw, XENMEM_access_rw);
    ok &= check_access("get-default-frame", frame_default, XENMEM_access_rx);
    if ( !ok )
        goto reset;

    /* A batch: FRAME_RW stays rw, FRAME_DEFAULT becomes r (still no write). */
    {
        uint64_t mfns[] = { frame_rw, frame_default };
        uint8_t access[] = { XENMEM_access_rw, XENMEM_access_r };

        if ( set_access_multi(access, mfns, 2) )
        {
            fail("set-multi");
            ok = false;
            goto reset;
        }
        printf("STEP set-multi ok\n");
        ok &= check_access("get-multi-rw", frame_rw, XENMEM_access_rw);
        ok &= check_access("get-multi-r", frame_default, XENMEM_access_r);
        if ( !ok )
            goto reset;
    }

    printf("SETUP-DONE\n");

    for ( ;; )
    {
        struct pollfd pfd = { .fd = xenevtchn_fd(xce), .events = POLLIN };
        bool answered = false;

        if ( poll(&pfd, 1, 100) == 1 )
        {
            int pending = xenevtchn_pending(xce);

            if ( pending >= 0 )
                xenevtchn_unmask(xce, pending);
        }

        while ( RING_HAS_UNCONSUMED_REQUESTS(&back_ring) )
        {
            vm_event_request_t req;
            vm_event_response_t rsp;
            uint64_t mfn;

            memcpy(&req, RING_GET_REQUEST(&back_ring, back_ring.req_cons),
                   sizeof(req));
            back_ring.req_cons++;
            back_ring.sring->req_event = back_ring.req_cons + 1;

            if ( req.version != VM_EVENT_INTERFACE_VERSION ||
                 req.reason != VM_EVENT_REASON_MEM_ACCESS )
            {
                printf("STEP request FAIL version=%u reason=%u\n",
                       req.version, req.reason);
                ok = false;
            }
            mfn = req.u.mem_access.gfn;
            events++;
            printf("EVENT vcpu=%u access=%c%c%c mfn=%#" PRIx64
                   " offset=%#" PRIx64 " gla=%#" PRIx64 " flags=%#x"
                   " gfn_is_mfn=%d paused=%d\n",
                   req.vcpu_id,
                   (req.u.mem_access.flags & MEM_ACCESS_R) ? 'r' : '-',
                   (req.u.mem_access.flags & MEM_ACCESS_W) ? 'w' : '-',
                   (req.u.mem_access.flags & MEM_ACCESS_X) ? 'x' : '-',
                   mfn, req.u.mem_access.offset, req.u.mem_access.gla,
                   req.u.mem_access.flags,
                   !!(req.u.mem_access.flags & MEM_ACCESS_GFN_IS_MFN),
                   !!(req.flags & VM_EVENT_FLAG_VCPU_PAUSED));

            /* Relax the frame, as xen-access does, and read it back. */
            if ( set_access(XENMEM_access_rwx, mfn, 1) )
            {
                fail("relax");
                ok = false;
            }
            else if ( events == 1 )
                ok &= check_access("relaxed", mfn, XENMEM_access_rwx);

            memset(&rsp, 0, sizeof(rsp));
            rsp.version = VM_EVENT_INTERFACE_VERSION;
            rsp.vcpu_id = req.vcpu_id;
            rsp.flags = req.flags & VM_EVENT_FLAG_VCPU_PAUSED;
            rsp.reason = req.reason;
            rsp.u.mem_access = req.u.mem_access;
            memcpy(RING_GET_RESPONSE(&back_ring, back_ring.rsp_prod_pvt),
                   &rsp, sizeof(rsp));
            back_ring.rsp_prod_pvt++;
            RING_PUSH_RESPONSES(&back_ring);
            answered = true;
        }

        if ( answered )
        {
            /* The first batch through the domctl, the others by event. */
            if ( !resumed++ )
            {
                rc = xc_monitor_resume(xch, domid);
                printf("STEP resume %s\n", rc ? "FAIL" : "ok");
                ok &= !rc;
            }
            else
                xenevtchn_notify(xce, local_port);
        }

        if ( domain_gone() && !RING_HAS_UNCONSUMED_REQUESTS(&back_ring) )
            break;
        if ( now() > deadline )
        {
            printf("INFO deadline reached\n");
            break;
        }
    }
    printf("STEP events %s count=%u\n", events ? "ok" : "FAIL", events);
    ok &= events > 0;

 reset:
    if ( set_access(XENMEM_access_rwx, ~0ull, 0) )
    {
        fail("reset-default");
        ok = false;
    }
    else
        printf("STEP reset-default ok\n");

 disable:
    munmap(ring, XC_PAGE_SIZE);
    if ( local_port >= 0 )
        xenevtchn_unbind(xce, local_port);
    if ( xce )
        xenevtchn_close(xce);
    if ( xc_monitor_disable(xch, domid) )
    {
        fail("disable");
        ok = false;
    }
    else
        printf("STEP disable ok\n");

    xc_interface_close(xch);
    printf("SUMMARY %s events=%u api=mfn\n", ok ? "ok" : "fail", events);
    return ok ? 0 : 1;
}
